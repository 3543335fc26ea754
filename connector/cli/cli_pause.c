/*
 * cli_pause — `optsync pause PHONE --configuration X --until T`: no
 * marketing to PHONE until T (a preference; consent itself unchanged).
 */
#include "cli_manual.h"

static int run(struct cli_ctx *ctx, int argc, char **argv)
{
    return cli_manual_run(ctx, argc, argv, CONSENT_ACT_PAUSE);
}

const struct cli_command cli_pause_command = {
    .name = "pause",
    .synopsis = "PHONE --configuration ID|NAME --until TIME",
    .summary = "pause marketing to a number until a time",
    .description =
        "Sets a pause on PHONE: the gate denies marketing (reason paused)\n"
        "until TIME, then consent applies as before.  The number needs a\n"
        "record in the Configuration.  Written to Dynamics only when the\n"
        "mapping names a paused_until column.",
    .exit_codes = cli_manual_exit_codes,
    .options = cli_pause_options,
    .run = run,
};
