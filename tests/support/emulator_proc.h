/*
 * emulator_proc.h - start and stop the emulators of tests/emulator/
 *
 * Test support for cmocka tests that talk to an emulator: the Dataverse +
 * Entra ID one (dataverse_emulator.py) or the WhatsApp Cloud API one
 * (whatsapp_emulator.py). Both keep the same launch contract, so
 * emulator_start_script() runs either as
 *
 *     python3 <src>/tests/emulator/<script> --port 0 [args]
 *
 * reads the one line `READY port=N` the emulator prints on stdout (waiting
 * with poll(), never sleeping) and records pid, port and base URL.
 * emulator_start() is the same for dataverse_emulator.py.
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

/* Scripts in tests/emulator/ that emulator_start_script() can run. */
#define EMULATOR_DATAVERSE "dataverse_emulator.py"
#define EMULATOR_WHATSAPP "whatsapp_emulator.py"

struct emulator_proc {
    pid_t pid;         /* child process id, 0 when not running */
    int port;          /* TCP port on 127.0.0.1 */
    int stdout_fd;     /* read end of the child's stdout (owned) */
    char base_url[64]; /* "http://127.0.0.1:N" ("https" with --tls-cert) */
};

/*
 * Start tests/emulator/<script> (a file name there, e.g. EMULATOR_WHATSAPP;
 * no '/'). `extra_args` is a NULL-terminated list of further arguments
 * (e.g. "--webhook-url", url, "--quiet"), or NULL. Returns 0 and fills
 * *out; returns -1 (message on stderr, child reaped) when the name is not
 * a plain file name, or the script cannot be started or does not report
 * READY in time.
 */
int emulator_start_script(struct emulator_proc *out, const char *script,
                          const char *const *extra_args);

/*
 * Start the Dataverse + Entra ID emulator: emulator_start_script() with
 * EMULATOR_DATAVERSE. `extra_args` e.g. "--seed", path, "--max-page-size",
 * "10".
 */
int emulator_start(struct emulator_proc *out, const char *const *extra_args);

/*
 * Stop the emulator: SIGTERM, wait up to 10 s, then SIGKILL. Safe to call
 * twice and on a zeroed struct.
 */
void emulator_stop(struct emulator_proc *emu);

#endif /* OPTSYNC_TESTS_EMULATOR_PROC_H */
