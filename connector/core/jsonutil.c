/*
 * jsonutil — see jsonutil.h.
 */
#include "jsonutil.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "caps.h"
#include "err.h"
#include "xalloc.h"

static int depth_ok(const cJSON *item, int depth)
{
    const cJSON *child;

    if (depth > CAP_JSON_DEPTH)
        return 0;
    for (child = item->child; child; child = child->next)
        if (!depth_ok(child, depth + 1))
            return 0;
    return 1;
}

/* True when only JSON white space follows `end` up to text + len. */
static int only_space_after(const char *end, const char *text, size_t len)
{
    for (; end < text + len; end++)
        if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r')
            return 0;
    return 1;
}

static cJSON *parse(const char *text, size_t len, int whole)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);

    if (root && whole && !only_space_after(end, text, len)) {
        cJSON_Delete(root);
        err_set(ERR_CLASS_INPUT, "text after the JSON value at byte %ld",
                (long)(end - text));
        return NULL;
    }
    if (!root) {
        err_set(ERR_CLASS_INPUT, "malformed JSON near byte %ld",
                end ? (long)(end - text) : 0L);
        return NULL;
    }
    if (!depth_ok(root, 1)) {
        cJSON_Delete(root);
        err_set(ERR_CLASS_INPUT, "JSON nested deeper than %d levels",
                CAP_JSON_DEPTH);
        return NULL;
    }
    return root;
}

cJSON *jsonutil_parse(const char *text, size_t len)
{
    return parse(text, len, 0);
}

cJSON *jsonutil_parse_whole(const char *text, size_t len)
{
    return parse(text, len, 1);
}

static int by_key(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a;
    const cJSON *y = *(const cJSON *const *)b;

    return strcmp(x->string, y->string);
}

/* Re-links an object's children in key order (arrays keep their order). */
static void sort_tree(cJSON *item)
{
    cJSON **kids, *child;
    size_t n = 0, i;

    for (child = item->child; child; child = child->next) {
        sort_tree(child);
        n++;
    }
    if (!cJSON_IsObject(item) || n < 2)
        return;
    kids = malloc(n * sizeof(*kids));
    if (!kids)
        abort();
    for (i = 0, child = item->child; child; child = child->next)
        kids[i++] = child;
    qsort(kids, n, sizeof(*kids), by_key);
    for (i = 0; i < n; i++) {
        kids[i]->prev = i ? kids[i - 1] : kids[n - 1]; /* cJSON: head->prev
                                                           is the tail */
        kids[i]->next = i + 1 < n ? kids[i + 1] : NULL;
    }
    item->child = kids[0];
    free(kids);
}

char *jsonutil_canonical(cJSON *item)
{
    char *out;

    sort_tree(item);
    out = cJSON_PrintUnformatted(item);
    if (!out)
        abort();
    return out;
}

const char *jsonutil_str(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int64_t jsonutil_int(const cJSON *obj, const char *name, int64_t dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

    if (!cJSON_IsNumber(v) || !(v->valuedouble >= -9.0e15) ||
        !(v->valuedouble <= 9.0e15))
        return dflt;
    return (int64_t)v->valuedouble;
}

/* ---- arenas ---------------------------------------------------------------
 *
 * cJSON allocates through two global hooks.  Ours hand out arena memory
 * while the calling thread parses into an arena, and plain malloc
 * otherwise.  Arena chunks come from one reserved address range, so the
 * free hook tells them apart by address alone (no header, no lock), and
 * free() keeps working on everything else cJSON returns (printed text).
 */

#define CHUNK_BYTES (1u << 20)
#define REGION_CHUNKS 1024 /* 1 GiB of address space, none of it resident */

struct chunk_link {
    struct chunk_link *next;
};

struct json_arena {
    char **chunks; /* owned list: region chunks and outsized mallocs */
    size_t n_chunks, cap_chunks;
    char *cur; /* bump pointer in the last region chunk */
    size_t left;
};

/* Released chunks stay resident up to this many (a sync's pipeline
 * parses a page into fresh memory otherwise: a page fault per 4 KiB);
 * beyond it their pages go back to the kernel. */
#define WARM_CHUNKS 32

static char *region;            /* reserved, PROT_NONE until used */
static struct chunk_link *warm; /* released chunks, still resident */
static struct chunk_link *cold; /* released chunks, pages given back */
static size_t n_warm;
static size_t region_used; /* chunks handed out so far */
static pthread_mutex_t region_mu = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local struct json_arena *parsing; /* this thread's arena */

static int in_region(const void *p)
{
    return region && (const char *)p >= region &&
           (const char *)p < region + (size_t)REGION_CHUNKS * CHUNK_BYTES;
}

static void *hook_malloc(size_t n);

static void hook_free(void *p)
{
    if (!in_region(p))
        free(p); /* arena memory goes back with its arena */
}

__attribute__((constructor)) static void hooks_install(void)
{
    cJSON_Hooks hooks = { hook_malloc, hook_free };

    region = mmap(NULL, (size_t)REGION_CHUNKS * CHUNK_BYTES, PROT_NONE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (region == MAP_FAILED)
        region = NULL; /* arenas fall back to malloc */
    cJSON_InitHooks(&hooks);
}

/* A fresh 1 MiB chunk of the region, or NULL when it is used up. */
static char *chunk_take(void)
{
    char *c = NULL;

    pthread_mutex_lock(&region_mu);
    if (warm) {
        c = (char *)warm;
        warm = warm->next;
        n_warm--;
    } else if (cold) {
        c = (char *)cold;
        cold = cold->next;
    } else if (region && region_used < REGION_CHUNKS) {
        c = region + region_used++ * (size_t)CHUNK_BYTES;
        if (mprotect(c, CHUNK_BYTES, PROT_READ | PROT_WRITE) != 0)
            c = NULL;
    }
    pthread_mutex_unlock(&region_mu);
    return c;
}

static void chunk_give(char *c)
{
    struct chunk_link *link = (struct chunk_link *)c;
    int keep;

    pthread_mutex_lock(&region_mu);
    keep = n_warm < WARM_CHUNKS;
    n_warm += (size_t)keep;
    pthread_mutex_unlock(&region_mu);
    /* Beyond the warm ones, RSS follows live pages. */
    if (!keep)
        madvise(c, CHUNK_BYTES, MADV_DONTNEED);
    pthread_mutex_lock(&region_mu);
    link->next = keep ? warm : cold;
    if (keep)
        warm = link;
    else
        cold = link;
    pthread_mutex_unlock(&region_mu);
}

static void arena_keep(struct json_arena *a, char *chunk)
{
    if (a->n_chunks == a->cap_chunks) {
        a->cap_chunks = a->cap_chunks ? a->cap_chunks * 2 : 16;
        a->chunks = xrealloc(a->chunks, a->cap_chunks * sizeof(char *));
    }
    a->chunks[a->n_chunks++] = chunk;
}

static void *arena_alloc(struct json_arena *a, size_t n)
{
    char *c, *p;

    n = (n + 15) & ~(size_t)15;
    if (n > a->left) {
        c = n <= CHUNK_BYTES / 4 ? chunk_take() : NULL;
        if (!c) { /* outsized, or no region: a malloc the arena frees */
            p = xmalloc(n);
            arena_keep(a, p);
            return p;
        }
        arena_keep(a, c);
        a->cur = c;
        a->left = CHUNK_BYTES;
    }
    p = a->cur;
    a->cur += n;
    a->left -= n;
    return p;
}

static void *hook_malloc(size_t n)
{
    return parsing ? arena_alloc(parsing, n) : malloc(n);
}

void jsonutil_arena_trim(void)
{
    struct chunk_link *list, *next;

    pthread_mutex_lock(&region_mu);
    list = warm;
    warm = NULL;
    n_warm = 0;
    pthread_mutex_unlock(&region_mu);
    for (; list; list = next) {
        next = list->next;
        madvise(list, CHUNK_BYTES, MADV_DONTNEED);
        pthread_mutex_lock(&region_mu);
        list->next = cold;
        cold = list;
        pthread_mutex_unlock(&region_mu);
    }
}

void jsonutil_arena_free(struct json_arena *a)
{
    size_t i;

    if (!a)
        return;
    for (i = 0; i < a->n_chunks; i++) {
        if (in_region(a->chunks[i]))
            chunk_give(a->chunks[i]);
        else
            free(a->chunks[i]);
    }
    free(a->chunks);
    free(a);
}

cJSON *jsonutil_parse_arena(const char *text, size_t len,
                            struct json_arena **out_arena)
{
    struct json_arena *a = xcalloc(1, sizeof(*a));
    const char *end = NULL;
    cJSON *root;

    parsing = a;
    root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    parsing = NULL;
    if (!root || !depth_ok(root, 1)) {
        /* cJSON frees a partial tree with our hook: arena memory stays
         * in the arena, which goes now. */
        if (root)
            err_set(ERR_CLASS_INPUT, "JSON nested deeper than %d levels",
                    CAP_JSON_DEPTH);
        else
            err_set(ERR_CLASS_INPUT, "malformed JSON near byte %ld",
                    end ? (long)(end - text) : 0L);
        jsonutil_arena_free(a);
        return NULL;
    }
    *out_arena = a;
    return root;
}
