/*
 * fuzz_config — the INI config parser and validator (inih + our key
 * table, line counting, _env/_file forms, every type's parser) on
 * arbitrary text.  Input is capped at 64 KiB.  Relative _file paths point
 * into a directory that does not exist.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"

#define MAX_INPUT (64 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config_diag diag = { 0 };
    struct optsync_config *cfg = NULL;
    char *text;
    size_t i;

    if (size > MAX_INPUT)
        return 0;
    text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    log_level_current = LOG_ERROR;
    if (config_load_string(&cfg, text, "fuzz.ini", "/nonexistent-fuzz-dir",
                           NULL, 0, &diag) == 0) {
        FILE *null = fopen("/dev/null", "w");

        if (null) {
            config_print(null, cfg);
            fclose(null);
        }
        config_free(cfg);
    }
    for (i = 0; i < diag.count; i++)
        free(config_problem_format(&diag.items[i]));
    config_diag_dispose(&diag);
    free(text);
    return 0;
}
