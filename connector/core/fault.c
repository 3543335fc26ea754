/*
 * fault — see fault.h.
 */
#include "fault.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

struct point_state {
    _Atomic long calls;  /* calls since armed */
    _Atomic long nth;    /* fail at this call (0 = disarmed) */
    _Atomic int code;    /* what to fail with */
    _Atomic int persist; /* keep failing after nth */
};

static struct point_state points[FAULT_POINT_COUNT];
static _Atomic int any_armed;

static const char *const point_names[FAULT_POINT_COUNT] = {
    "sqlite_step",
    "curl_perform",
};

void fault_arm(enum fault_point point, long nth, int code, int persist)
{
    struct point_state *p = &points[point];

    atomic_store(&p->calls, 0);
    atomic_store(&p->code, code);
    atomic_store(&p->persist, persist);
    atomic_store(&p->nth, nth);
    atomic_store(&any_armed, 1);
}

void fault_disarm_all(void)
{
    int i;

    for (i = 0; i < FAULT_POINT_COUNT; i++) {
        atomic_store(&points[i].nth, 0);
        atomic_store(&points[i].calls, 0);
    }
    atomic_store(&any_armed, 0);
}

int fault_check(enum fault_point point)
{
    struct point_state *p = &points[point];
    long call, nth;

    if (!atomic_load_explicit(&any_armed, memory_order_relaxed))
        return 0;
    call = atomic_fetch_add(&p->calls, 1) + 1;
    nth = atomic_load(&p->nth);
    if (nth == 0 || call < nth)
        return 0;
    if (call == nth || atomic_load(&p->persist))
        return atomic_load(&p->code);
    return 0;
}

long fault_calls(enum fault_point point)
{
    return atomic_load(&points[point].calls);
}

/* One "name:nth[+]:code" item. */
static int arm_one(const char *item)
{
    char *end;
    long nth, code;
    int persist = 0, i;
    size_t namelen = strcspn(item, ":");

    for (i = 0; i < FAULT_POINT_COUNT; i++)
        if (strlen(point_names[i]) == namelen &&
            strncmp(point_names[i], item, namelen) == 0)
            break;
    if (i == FAULT_POINT_COUNT || item[namelen] != ':')
        goto bad;
    nth = strtol(item + namelen + 1, &end, 10);
    if (*end == '+') {
        persist = 1;
        end++;
    }
    if (nth < 1 || *end != ':')
        goto bad;
    code = strtol(end + 1, &end, 10);
    if (*end != '\0' && *end != ',')
        goto bad;
    fault_arm((enum fault_point)i, nth, (int)code, persist);
    return 0;
bad:
    err_set(ERR_CLASS_USAGE,
            "OPTSYNC_FAULT: cannot parse '%s' "
            "(expected point:nth[+]:code, point sqlite_step|curl_perform)",
            item);
    return ERR_BADINPUT;
}

int fault_arm_from_env(void)
{
    const char *spec = getenv("OPTSYNC_FAULT");
    int rc;

    while (spec && *spec) {
        rc = arm_one(spec);
        if (rc)
            return rc;
        spec = strchr(spec, ',');
        if (spec)
            spec++;
    }
    return 0;
}
