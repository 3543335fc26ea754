/*
 * emulator_control — see emulator_control.h.
 */
#include "emulator_control.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "testutil.h"
#include "xalloc.h"

long emulator_control(const struct emulator_proc *emu, const char *method,
                      const char *route, const char *json, char **out)
{
    static const char *const headers[] = { "Content-Type: application/json",
                                           NULL };
    struct http_options o = HTTP_OPTIONS_INIT;
    struct http_request req;
    struct http_response resp;
    char *url = xasprintf("%s/_emulator/%s", emu->base_url, route);
    http *h = NULL;
    long status;

    o.timeout_ms = 600000;
    assert_int_equal(http_new(&h, &o), 0);
    memset(&req, 0, sizeof(req));
    req.method = method;
    req.url = url;
    req.headers = headers;
    req.body = json;
    req.body_len = json ? strlen(json) : 0;
    req.max_response = 16 << 20;
    http_response_init(&resp);
    if (http_send(&resp, h, &req) != 0)
        fail_msg("emulator control %s %s failed", method, route);
    status = resp.status;
    if (out)
        *out = strbuf_detach(&resp.body);
    http_response_dispose(&resp);
    http_free(h);
    free(url);
    return status;
}

long emulator_control_json(const struct emulator_proc *emu, const char *method,
                           const char *route, const char *json, cJSON **out)
{
    char *body = NULL;
    long status = emulator_control(emu, method, route, json, &body);

    *out = body ? cJSON_Parse(body) : NULL;
    if (*out == NULL)
        fail_msg("emulator control %s %s: not JSON: %s", method, route,
                 body ? body : "(no body)");
    free(body);
    return status;
}

struct optsync_config *emulator_config(const struct emulator_proc *emu,
                                       const char *const *overrides)
{
    char *path = testutil_source_path("config/optsync.ini");
    char *args[16];
    struct config_override ov[16];
    struct config_diag d = { 0 };
    struct optsync_config *cfg = NULL;
    size_t n = 0, i;

    args[n++] = xasprintf("dataverse.url=%s", emu->base_url);
    args[n++] = xasprintf("auth.authority=%s", emu->base_url);
    for (i = 0; overrides && overrides[i] && n < 16; i++)
        args[n++] = xstrdup(overrides[i]);
    for (i = 0; i < n; i++)
        if (config_override_parse(&ov[i], args[i]) != 0)
            fail_msg("bad override %s", overrides[i - 2]);
    if (config_load(&cfg, path, ov, n, &d) != 0) {
        config_diag_print(stderr, &d);
        fail_msg("test config does not load");
    }
    config_diag_dispose(&d);
    for (i = 0; i < n; i++)
        free(args[i]);
    free(path);
    return cfg;
}
