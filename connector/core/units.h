/*
 * units — strict parsing of the value forms config and CLI accept:
 * integers, booleans, durations ("90", "30s", "5m", "2h", "7d") and sizes
 * ("4096", "64KiB", "4MiB", "1GiB", "3MB").  Nothing here allocates.
 * Each parser returns 0, or ERR_BADINPUT (and leaves *out alone) when the
 * text is not exactly one value of its kind.
 */
#ifndef OPTSYNC_UNITS_H
#define OPTSYNC_UNITS_H

#include <stddef.h>
#include <stdint.h>

int units_int_parse(int64_t *out, const char *s);
/* true/false, yes/no, on/off, 1/0 (any case). */
int units_bool_parse(int *out, const char *s);
/* Seconds. */
int units_duration_parse(int64_t *out, const char *s);
/* Bytes. KiB/MiB/GiB (and K/M/G) are binary, KB/MB/GB decimal. */
int units_size_parse(int64_t *out, const char *s);

/* Shortest exact form: 900 → "15m", 61 → "61s", 4194304 → "4MiB". */
void units_duration_format(char *buf, size_t n, int64_t seconds);
void units_size_format(char *buf, size_t n, int64_t bytes);

#endif
