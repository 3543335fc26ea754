/*
 * units — see units.h.
 */
#include "units.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"

int units_int_parse(int64_t *out, const char *s)
{
    char *end;
    long long v;

    if (!s || !*s)
        return ERR_BADINPUT;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end || end == s)
        return ERR_BADINPUT;
    *out = v;
    return 0;
}

int units_bool_parse(int *out, const char *s)
{
    static const char *const yes[] = { "true", "yes", "on", "1" };
    static const char *const no[] = { "false", "no", "off", "0" };
    size_t i;

    for (i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return ERR_BADINPUT;
}

/* A non-negative number followed by a suffix from `table`. */
struct unit {
    const char *suffix;
    int64_t factor;
};

static int parse_with_units(int64_t *out, const char *s,
                            const struct unit *table, size_t count)
{
    char *end;
    long long v;
    size_t i;

    if (!s || *s < '0' || *s > '9')
        return ERR_BADINPUT;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || v < 0)
        return ERR_BADINPUT;
    for (i = 0; i < count; i++) {
        if (strcmp(end, table[i].suffix) == 0) {
            if (table[i].factor && v > INT64_MAX / table[i].factor)
                return ERR_BADINPUT;
            *out = (int64_t)v * table[i].factor;
            return 0;
        }
    }
    return ERR_BADINPUT;
}

static const struct unit duration_units[] = {
    { "", 1 },     { "s", 1 },     { "m", 60 },
    { "h", 3600 }, { "d", 86400 }, { "w", 7 * 86400 },
};

static const struct unit size_units[] = {
    { "", 1 },
    { "B", 1 },
    { "K", 1024 },
    { "KiB", 1024 },
    { "KB", 1000 },
    { "M", 1024 * 1024 },
    { "MiB", 1024 * 1024 },
    { "MB", 1000 * 1000 },
    { "G", 1024 * 1024 * 1024 },
    { "GiB", 1024 * 1024 * 1024 },
    { "GB", 1000 * 1000 * 1000 },
};

int units_duration_parse(int64_t *out, const char *s)
{
    return parse_with_units(out, s, duration_units,
                            sizeof(duration_units) / sizeof(duration_units[0]));
}

int units_size_parse(int64_t *out, const char *s)
{
    return parse_with_units(out, s, size_units,
                            sizeof(size_units) / sizeof(size_units[0]));
}

void units_duration_format(char *buf, size_t n, int64_t seconds)
{
    static const struct unit by_size[] = {
        { "d", 86400 },
        { "h", 3600 },
        { "m", 60 },
    };
    size_t i;

    for (i = 0; i < 3; i++) {
        if (seconds > 0 && seconds % by_size[i].factor == 0) {
            snprintf(buf, n, "%lld%s", (long long)(seconds / by_size[i].factor),
                     by_size[i].suffix);
            return;
        }
    }
    snprintf(buf, n, "%llds", (long long)seconds);
}

void units_size_format(char *buf, size_t n, int64_t bytes)
{
    static const struct unit by_size[] = {
        { "GiB", 1024 * 1024 * 1024 },
        { "MiB", 1024 * 1024 },
        { "KiB", 1024 },
    };
    size_t i;

    for (i = 0; i < 3; i++) {
        if (bytes > 0 && bytes % by_size[i].factor == 0) {
            snprintf(buf, n, "%lld%s", (long long)(bytes / by_size[i].factor),
                     by_size[i].suffix);
            return;
        }
    }
    snprintf(buf, n, "%lld", (long long)bytes);
}
