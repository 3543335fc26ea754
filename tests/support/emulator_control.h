/*
 * emulator_control — talk to a running emulator from cmocka tests: its
 * control API (faults, waits, expiry, admin writes), and an optsync config
 * pointed at it.
 */
#ifndef OPTSYNC_TESTS_EMULATOR_CONTROL_H
#define OPTSYNC_TESTS_EMULATOR_CONTROL_H

#include "config.h"
#include "emulator_proc.h"

/*
 * METHOD /_emulator/<route> with a JSON body (or NULL).  Returns the HTTP
 * status; *out (malloc'd, may be NULL) receives the body.  Fails the test
 * when the emulator cannot be reached.
 */
long emulator_control(const struct emulator_proc *emu, const char *method,
                      const char *route, const char *json, char **out);

/* A config for the emulator: config/optsync.ini with url and authority
 * pointed at it, plus more "section.key=value" overrides (NULL-terminated
 * list, or NULL). */
struct optsync_config *emulator_config(const struct emulator_proc *emu,
                                       const char *const *overrides);

#endif
