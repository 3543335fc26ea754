/*
 * cli_opt_in — `optsync opt-in PHONE --configuration X --source S`: an
 * opt-in taken by a person (a signed form, a call), through the same
 * state machine as a WhatsApp "Subscribe".
 */
#include "cli_manual.h"

static int run(struct cli_ctx *ctx, int argc, char **argv)
{
    return cli_manual_run(ctx, argc, argv, CONSENT_ACT_OPT_IN);
}

const struct cli_command cli_opt_in_command = {
    .name = "opt-in",
    .synopsis = "PHONE --configuration ID|NAME --source WHO",
    .summary = "record an opt-in taken by a person",
    .description =
        "Records that PHONE opted in to marketing for the Configuration.\n"
        "Follows the consent rules: from none or opted_out it becomes a\n"
        "single opt-in; a second opt-in within double_opt_in_window\n"
        "confirms a double opt-in when the Configuration requires one.",
    .exit_codes = cli_manual_exit_codes,
    .options = cli_manual_options,
    .run = run,
};
