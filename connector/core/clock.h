/*
 * clock — the time seam.  All code asks clock_now_ms() for "now", so tests
 * can fix the clock (as curl's hsts tests do) instead of sleeping.
 */
#ifndef OPTSYNC_CLOCK_H
#define OPTSYNC_CLOCK_H

#include <stdint.h>

/* Wall clock, milliseconds since the Unix epoch (UTC). */
int64_t clock_now_ms(void);

/* Monotonic clock in milliseconds, for timeouts and rates; not fixable. */
int64_t clock_mono_ms(void);

/* Tests: freeze the wall clock at `ms` (0 unfreezes), or move it. */
void clock_set_fixed(int64_t ms);
void clock_advance(int64_t ms);

#endif
