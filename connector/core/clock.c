/*
 * clock — see clock.h.
 */
#include "clock.h"

#include <stdatomic.h>
#include <time.h>

static _Atomic int64_t fixed_ms;

int64_t clock_now_ms(void)
{
    struct timespec ts;
    int64_t fixed = atomic_load(&fixed_ms);

    if (fixed)
        return fixed;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void clock_set_fixed(int64_t ms)
{
    atomic_store(&fixed_ms, ms);
}

void clock_advance(int64_t ms)
{
    atomic_fetch_add(&fixed_ms, ms);
}
