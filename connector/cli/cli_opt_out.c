/*
 * cli_opt_out — `optsync opt-out PHONE --configuration X --source S`: an
 * opt-out taken by a person, applied at once (the gate denies from the
 * next decision) and written back to Dynamics by the outbox.
 */
#include "cli_manual.h"

static int run(struct cli_ctx *ctx, int argc, char **argv)
{
    return cli_manual_run(ctx, argc, argv, CONSENT_ACT_OPT_OUT);
}

const struct cli_command cli_opt_out_command = {
    .name = "opt-out",
    .synopsis = "PHONE --configuration ID|NAME --source WHO",
    .summary = "record an opt-out taken by a person",
    .description =
        "Records that PHONE opted out of marketing for the Configuration,\n"
        "e.g. on a call with customer service.  Applied locally at once\n"
        "(the gate denies from the next decision), added to the ledger, and\n"
        "written back to Dynamics by the outbox.  With --topic, only that\n"
        "topic is opted out (a preference).",
    .exit_codes = cli_manual_exit_codes,
    .options = cli_manual_options,
    .run = run,
};
