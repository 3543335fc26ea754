/*
 * emulator_proc.h - start and stop the Dataverse + Entra ID emulator
 *
 * Test support for cmocka tests that talk to the emulator
 * (tests/emulator/dataverse_emulator.py). emulator_start() runs
 *
 *     python3 <src>/tests/emulator/dataverse_emulator.py --port 0 [args]
 *
 * reads the one line `READY port=N` the emulator prints on stdout (waiting
 * with poll(), never sleeping) and records pid, port and base URL.
 * emulator_stop() sends SIGTERM, reaps the child and falls back to SIGKILL.
 *
 * <src> is $OPTSYNC_SOURCE_DIR when set, else the OPTSYNC_SOURCE_DIR
 * compile definition. $OPTSYNC_PYTHON overrides the interpreter and
 * $OPTSYNC_EMULATOR_TIMEOUT the start timeout in seconds (default 60).
 * The emulator's stderr is inherited; its stdout pipe stays open (and is
 * closed by emulator_stop) so it never dies of a closed pipe.
 */
#ifndef OPTSYNC_TESTS_EMULATOR_PROC_H
#define OPTSYNC_TESTS_EMULATOR_PROC_H

#include <sys/types.h>

struct emulator_proc {
    pid_t pid;         /* child process id, 0 when not running */
    int port;          /* TCP port on 127.0.0.1 */
    int stdout_fd;     /* read end of the child's stdout (owned) */
    char base_url[64]; /* "http://127.0.0.1:N" ("https" with --tls-cert) */
};

/*
 * Start an emulator. `extra_args` is a NULL-terminated list of further
 * arguments (e.g. "--seed", path, "--max-page-size", "10"), or NULL.
 * Returns 0 and fills *out; returns -1 (message on stderr, child reaped)
 * when it cannot be started or does not report READY in time.
 */
int emulator_start(struct emulator_proc *out, const char *const *extra_args);

/*
 * Stop the emulator: SIGTERM, wait up to 10 s, then SIGKILL. Safe to call
 * twice and on a zeroed struct.
 */
void emulator_stop(struct emulator_proc *emu);

#endif /* OPTSYNC_TESTS_EMULATOR_PROC_H */
