/*
 * emulator_control — talk to a running emulator from cmocka tests: its
 * control API (faults, waits, expiry, admin writes), and an optsync config
 * pointed at it.  Both emulators (Dataverse and WhatsApp, see
 * emulator_proc.h) serve their control API as JSON under /_emulator/, so
 * emulator_control() and emulator_control_json() work with either.
 */
#ifndef OPTSYNC_TESTS_EMULATOR_CONTROL_H
#define OPTSYNC_TESTS_EMULATOR_CONTROL_H

#include <cjson/cJSON.h>

#include "config.h"
#include "emulator_proc.h"

/*
 * METHOD /_emulator/<route> with a JSON body (or NULL).  Returns the HTTP
 * status; *out (malloc'd, may be NULL) receives the body.  Fails the test
 * when the emulator cannot be reached.
 */
long emulator_control(const struct emulator_proc *emu, const char *method,
                      const char *route, const char *json, char **out);

/*
 * emulator_control() with the answer parsed: *out (owned, cJSON_Delete)
 * receives the body as JSON.  Fails the test when the emulator cannot be
 * reached or the body is not JSON.  E.g. on the WhatsApp emulator:
 *   emulator_control_json(&wa, "POST", "wait",
 *       "{\"condition\":\"messages\",\"count\":1}", &doc) == 200
 */
long emulator_control_json(const struct emulator_proc *emu, const char *method,
                           const char *route, const char *json, cJSON **out);

/* A config for the emulator: config/optsync.ini with url and authority
 * pointed at it, plus more "section.key=value" overrides (NULL-terminated
 * list, or NULL). */
struct optsync_config *emulator_config(const struct emulator_proc *emu,
                                       const char *const *overrides);

#endif
