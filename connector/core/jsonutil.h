/*
 * jsonutil — the JSON helpers cJSON does not have: parsing with our caps,
 * a canonical serialisation (sorted keys, no white space) for anything
 * that is hashed or compared byte for byte, and small typed getters.
 */
#ifndef OPTSYNC_JSONUTIL_H
#define OPTSYNC_JSONUTIL_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/*
 * Parses `len` bytes (need not be NUL-terminated).  Returns the tree (free
 * with cJSON_Delete) or NULL with err_set (ERR_CLASS_INPUT) saying where
 * it broke or that it nests deeper than CAP_JSON_DEPTH.
 */
cJSON *jsonutil_parse(const char *text, size_t len);

/* The same for a request body: the input must be one JSON value, with
 * only white space after it ("{...}garbage" is malformed). */
cJSON *jsonutil_parse_whole(const char *text, size_t len);

/*
 * Canonical text of `item` (malloc'd): object keys sorted by byte value at
 * every level, no white space, cJSON's escaping (which matches Python's
 * json.dumps(sort_keys=True, separators=(',', ':'), ensure_ascii=False)
 * for strings, integers, booleans and null).  Sorts `item` in place.
 */
char *jsonutil_canonical(cJSON *item);

/*
 * Large trees (an OData page: 5,000 rows, ~100,000 nodes) are parsed into
 * an arena: the nodes come from a few big chunks instead of one malloc
 * each, and the whole tree goes back in one step (jsonutil_arena_free)
 * instead of a free per node.  Such a tree must not be passed to
 * cJSON_Delete, nor changed with cJSON functions that allocate; reading
 * it is fine from any thread.  Returns NULL like jsonutil_parse.
 */
struct json_arena;
cJSON *jsonutil_parse_arena(const char *text, size_t len,
                            struct json_arena **out_arena);
void jsonutil_arena_free(struct json_arena *a); /* NULL is a no-op */

/* Gives the pages of released arena memory back to the kernel (a sync
 * keeps some resident between pages; call it when a read ends). */
void jsonutil_arena_trim(void);

/* Member `name` as a string / integer, or NULL / `dflt` when absent or of
 * another type. */
const char *jsonutil_str(const cJSON *obj, const char *name);
int64_t jsonutil_int(const cJSON *obj, const char *name, int64_t dflt);

#endif
