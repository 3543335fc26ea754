/*
 * cli_manual — what `optsync opt-out`, `opt-in` and `pause` share: a
 * consent change taken by a person (customer service, a signed form) is a
 * real source, applied through consent_apply() like any other.
 */
#ifndef OPTSYNC_CLI_MANUAL_H
#define OPTSYNC_CLI_MANUAL_H

#include "cli.h"

/* Options of the manual commands. */
enum {
    MANUAL_OPT_CONFIGURATION = 1,
    MANUAL_OPT_SOURCE,
    MANUAL_OPT_NOTE,
    MANUAL_OPT_UNTIL,
    MANUAL_OPT_TOPIC,
    MANUAL_OPT_JSON,
};

extern const struct cli_option cli_manual_options[];
extern const struct cli_option cli_pause_options[];
extern const char cli_manual_exit_codes[];

/* Runs the command for `action` (OPT_OUT, OPT_IN, PAUSE or
 * TOPIC_OPT_OUT when --topic is given). */
int cli_manual_run(struct cli_ctx *ctx, int argc, char **argv,
                   enum consent_action action);

#endif
