/*
 * gate_index — the send-gate's in-memory index: one entry per (slot of a
 * Configuration, E.164 number) with the strictest status of its active
 * rows, and, for the few numbers that have them, topic opt-outs and a
 * pause.  See gate.h (notes 3 and 4) for what it holds and when.
 *
 * Open addressing with linear probing, at most half full.  An entry is
 * one 64-bit word: the key (E.164 digits and the Configuration's slot),
 * the status and a flag for preferences, which live in a second, small
 * table.  A million numbers take 16 MiB, so a lookup is one cache miss
 * (usually also for a number that is not there), and on huge pages no
 * TLB miss.  Pure memory: no SQLite, no I/O.
 */
#include "gate_p.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "consent.h"
#include "xalloc.h"

#define MIN_SLOTS 1024u
#define HUGE_PAGE (2u * 1024 * 1024)

/* A word of the number table: key | status << 61 | HAS_EXTRA. */
#define KEY_MASK ((UINT64_C(1) << 61) - 1)
#define STATUS_SHIFT 61
#define HAS_EXTRA (UINT64_C(1) << 63)

/*
 * A zeroed word array.  Big ones are aligned to and advised for huge
 * pages: a lookup is a random access into MiBs, and with 4 KiB pages a
 * good part of its cost is the TLB miss.
 */
static uint64_t *words_new(size_t n)
{
    size_t bytes = n * sizeof(uint64_t);
    void *p = NULL;

    if (bytes < HUGE_PAGE || posix_memalign(&p, HUGE_PAGE, bytes) != 0)
        return xcalloc(n, sizeof(uint64_t));
#ifdef MADV_HUGEPAGE
    madvise(p, bytes, MADV_HUGEPAGE); /* advice only: may be refused */
#endif
    memset(p, 0, bytes);
    return p;
}

/* splitmix64's finaliser: keys that differ in a few low digits spread. */
static size_t home(const struct gate__table *t, uint64_t key)
{
    key ^= key >> 31;
    key *= UINT64_C(0x7fb5d329728ea185);
    key ^= key >> 27;
    key *= UINT64_C(0x81dadef4bc2dd44d);
    key ^= key >> 33;
    return (size_t)key & t->mask;
}

/* ---- tables ----------------------------------------------------------- */

static void table_init(struct gate__table *t, size_t n, int with_values)
{
    t->w = words_new(n);
    t->v = with_values ? xcalloc(n, sizeof(uint32_t)) : NULL;
    t->mask = n - 1;
    t->count = 0;
}

static void table_dispose(struct gate__table *t)
{
    free(t->w);
    free(t->v);
    memset(t, 0, sizeof(*t));
}

/* Slot of `key`, or -1. */
static long find(const struct gate__table *t, uint64_t key)
{
    size_t i = home(t, key);

    while (t->w[i]) {
        if ((t->w[i] & KEY_MASK) == key)
            return (long)i;
        i = (i + 1) & t->mask;
    }
    return -1;
}

static void grow(struct gate__table *t)
{
    struct gate__table old = *t;
    size_t i, j;

    table_init(t, (old.mask + 1) * 2, old.v != NULL);
    t->count = old.count;
    for (i = 0; i <= old.mask; i++) {
        if (!old.w[i])
            continue;
        j = home(t, old.w[i] & KEY_MASK);
        while (t->w[j])
            j = (j + 1) & t->mask;
        t->w[j] = old.w[i];
        if (t->v)
            t->v[j] = old.v[i];
    }
    table_dispose(&old);
}

/* The slot of `key`, added (word = key, value 0) when missing. */
static size_t insert(struct gate__table *t, uint64_t key, int *added)
{
    size_t i;

    if ((t->count + 1) * 2 > t->mask + 1)
        grow(t);
    i = home(t, key);
    while (t->w[i] && (t->w[i] & KEY_MASK) != key)
        i = (i + 1) & t->mask;
    *added = !t->w[i];
    if (*added) {
        t->w[i] = key;
        if (t->v)
            t->v[i] = 0;
        t->count++;
    }
    return i;
}

/* Backward-shift deletion: later members of the run whose home does not
 * lie cyclically in (hole, j] move into the hole, so lookups never need
 * tombstones. */
static void remove_at(struct gate__table *t, size_t hole)
{
    size_t j = hole, k;

    for (;;) {
        j = (j + 1) & t->mask;
        if (!t->w[j])
            break;
        k = home(t, t->w[j] & KEY_MASK);
        if (hole <= j ? (hole < k && k <= j) : (hole < k || k <= j))
            continue;
        t->w[hole] = t->w[j];
        if (t->v)
            t->v[hole] = t->v[j];
        hole = j;
    }
    t->w[hole] = 0;
    t->count--;
}

/* ---- preferences ------------------------------------------------------ */

static struct gate__extra *extra_get(const struct gate__index *ix, uint64_t key)
{
    long i = find(&ix->extra_of, key);

    return i < 0 ? NULL : &ix->extras[ix->extra_of.v[i] - 1];
}

/* The preferences of `key`, added empty when missing. */
static struct gate__extra *extra_put(struct gate__index *ix, uint64_t key)
{
    size_t i = insert(&ix->extra_of, key, &(int){ 0 });
    uint32_t e;

    if (ix->extra_of.v[i])
        return &ix->extras[ix->extra_of.v[i] - 1];
    if (ix->n_free) {
        e = ix->free_extras[--ix->n_free];
    } else {
        if (ix->n_extras == ix->cap_extras) {
            ix->cap_extras = ix->cap_extras ? ix->cap_extras * 2 : 64;
            ix->extras =
                xrealloc(ix->extras, ix->cap_extras * sizeof(*ix->extras));
        }
        e = ++ix->n_extras;
    }
    memset(&ix->extras[e - 1], 0, sizeof(*ix->extras));
    ix->extra_of.v[i] = e;
    return &ix->extras[e - 1];
}

static void extra_drop(struct gate__index *ix, uint64_t key)
{
    long i = find(&ix->extra_of, key);
    uint32_t e;

    if (i < 0)
        return;
    e = ix->extra_of.v[i];
    free(ix->extras[e - 1].topics);
    memset(&ix->extras[e - 1], 0, sizeof(*ix->extras));
    if (ix->n_free == ix->cap_free) {
        ix->cap_free = ix->cap_free ? ix->cap_free * 2 : 64;
        ix->free_extras =
            xrealloc(ix->free_extras, ix->cap_free * sizeof(uint32_t));
    }
    ix->free_extras[ix->n_free++] = e;
    remove_at(&ix->extra_of, (size_t)i);
}

/* Adds the items of the comma list `more` that *list (owned) lacks:
 * folding the same row twice must change nothing. */
static void topics_append(char **list, const char *more)
{
    const char *item = more, *comma, *t;
    char *one, *joined;
    size_t n;

    while (item && *item) {
        comma = strchr(item, ',');
        t = item;
        n = comma ? (size_t)(comma - item) : strlen(item);
        gate__trim(&t, &n);
        one = xstrndup(t, n);
        if (n && (!*list || !gate__topic_listed(*list, one))) {
            joined = *list ? xasprintf("%s,%s", *list, one) : xstrdup(one);
            free(*list);
            *list = joined;
        }
        free(one);
        item = comma ? comma + 1 : NULL;
    }
}

/* ---- the index -------------------------------------------------------- */

void gate__index_init(struct gate__index *ix)
{
    memset(ix, 0, sizeof(*ix));
    table_init(&ix->numbers, MIN_SLOTS, 0);
    table_init(&ix->extra_of, MIN_SLOTS, 1);
}

void gate__index_dispose(struct gate__index *ix)
{
    uint32_t i;

    for (i = 0; i < ix->n_extras; i++)
        free(ix->extras[i].topics);
    free(ix->extras);
    free(ix->free_extras);
    table_dispose(&ix->numbers);
    table_dispose(&ix->extra_of);
    memset(ix, 0, sizeof(*ix));
}

void gate__index_clear(struct gate__index *ix)
{
    gate__index_dispose(ix);
    gate__index_init(ix);
}

size_t gate__index_count(const struct gate__index *ix)
{
    return ix->numbers.count;
}

static uint64_t word(uint64_t key, enum consent_status status, int extra)
{
    return key | (uint64_t)status << STATUS_SHIFT | (extra ? HAS_EXTRA : 0);
}

void gate__index_set(struct gate__index *ix, uint64_t key,
                     const struct gate__agg *a)
{
    struct gate__extra *x;
    int extra = a->paused_until || a->topics, added;
    long i;

    if (a->rows == 0) {
        i = find(&ix->numbers, key);
        if (i < 0)
            return;
        if (ix->numbers.w[i] & HAS_EXTRA)
            extra_drop(ix, key);
        remove_at(&ix->numbers, (size_t)i);
        return;
    }
    i = (long)insert(&ix->numbers, key, &added);
    if (!added && (ix->numbers.w[i] & HAS_EXTRA) && !extra)
        extra_drop(ix, key);
    ix->numbers.w[i] = word(key, a->status, extra);
    if (!extra)
        return;
    x = extra_put(ix, key);
    x->paused_until = a->paused_until;
    free(x->topics);
    x->topics = a->topics ? xstrdup(a->topics) : NULL;
}

void gate__index_merge(struct gate__index *ix, uint64_t key,
                       enum consent_status status, const char *topics,
                       int64_t paused_until)
{
    struct gate__extra *x;
    int added, extra = paused_until || (topics && *topics);
    size_t i = insert(&ix->numbers, key, &added);
    uint64_t w = ix->numbers.w[i];
    enum consent_status now = (enum consent_status)((w >> STATUS_SHIFT) & 3);

    /* A new entry takes the row's status as it is; an old one keeps the
     * stricter (consent.h note 1). */
    if (!added && consent_status_rank(now) > consent_status_rank(status))
        status = now;
    ix->numbers.w[i] = word(key, status, extra || (w & HAS_EXTRA));
    if (!extra)
        return;
    x = extra_put(ix, key);
    if (paused_until > x->paused_until)
        x->paused_until = paused_until;
    topics_append(&x->topics, topics);
}

void gate__index_prefetch(const struct gate__index *ix, uint64_t key)
{
#if defined(__GNUC__)
    __builtin_prefetch(&ix->numbers.w[home(&ix->numbers, key)]);
#else
    (void)ix;
    (void)key;
#endif
}

void gate__index_view(const struct gate__index *ix, uint64_t key,
                      const char *topic, struct gate__view *v)
{
    const struct gate__extra *x;
    long i = find(&ix->numbers, key);
    uint64_t w;

    if (i < 0)
        return;
    w = ix->numbers.w[i];
    x = (w & HAS_EXTRA) ? extra_get(ix, key) : NULL;
    gate__view_add(v, (enum consent_status)((w >> STATUS_SHIFT) & 3),
                   x ? x->topics : NULL, x ? x->paused_until : 0, topic);
}

/* ---- folding rows ----------------------------------------------------- */

void gate__view_add(struct gate__view *v, enum consent_status status,
                    const char *topics, int64_t paused_until, const char *topic)
{
    if (v->rows == 0 ||
        consent_status_rank(status) > consent_status_rank(v->status))
        v->status = status;
    v->rows++;
    if (paused_until > v->paused_until)
        v->paused_until = paused_until;
    if (topic && topics && gate__topic_listed(topics, topic))
        v->topic_out = 1;
}

void gate__agg_add(struct gate__agg *a, enum consent_status status,
                   const char *topics, int64_t paused_until)
{
    if (a->rows == 0 ||
        consent_status_rank(status) > consent_status_rank(a->status))
        a->status = status;
    a->rows++;
    if (paused_until > a->paused_until)
        a->paused_until = paused_until;
    topics_append(&a->topics, topics);
}

void gate__agg_dispose(struct gate__agg *a)
{
    free(a->topics);
    memset(a, 0, sizeof(*a));
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static char fold(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

void gate__trim(const char **s, size_t *n)
{
    while (*n && is_blank(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n && is_blank((*s)[*n - 1]))
        (*n)--;
}

static int same_item(const char *a, size_t na, const char *b, size_t nb)
{
    size_t i;

    if (na != nb)
        return 0;
    for (i = 0; i < na; i++)
        if (fold(a[i]) != fold(b[i]))
            return 0;
    return 1;
}

int gate__topic_listed(const char *list, const char *topic)
{
    const char *item = list, *comma;
    size_t n_topic = strlen(topic), n;

    gate__trim(&topic, &n_topic);
    if (!n_topic)
        return 0;
    while (item) {
        comma = strchr(item, ',');
        n = comma ? (size_t)(comma - item) : strlen(item);
        gate__trim(&item, &n);
        if (same_item(item, n, topic, n_topic))
            return 1;
        item = comma ? comma + 1 : NULL;
    }
    return 0;
}

uint64_t gate__number(const char *e164)
{
    uint64_t v = 0;
    size_t n = 0;

    if (e164[0] != '+' || e164[1] < '1' || e164[1] > '9')
        return 0;
    for (e164++; *e164; e164++, n++) {
        if (*e164 < '0' || *e164 > '9' || n == 15)
            return 0;
        v = v * 10 + (uint64_t)(*e164 - '0');
    }
    return n >= 7 ? v : 0;
}
