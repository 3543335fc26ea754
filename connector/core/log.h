/*
 * log — the one logger: levels, per-subsystem debug, key=value lines.
 *
 * Every line is one event:
 *
 *     ts=2026-11-22T01:04:07.123Z level=info event=sync_done rows=5000
 *
 * The format string starts with the event name ("sync_done rows=%zu");
 * names are stable (operators grep for them).  The macros test the level
 * before anything is formatted, so a disabled debug line costs one branch.
 *
 * Never log a payload or a secret: pass values that may contain spaces
 * through log_q(), and secrets not at all.
 */
#ifndef OPTSYNC_LOG_H
#define OPTSYNC_LOG_H

#include <stdio.h>

#include "err.h"

enum log_level {
    LOG_ERROR = 0,
    LOG_WARN,
    LOG_NOTICE,
    LOG_INFO,
    LOG_DEBUG,
};

/* Subsystems for --debug=net,gate,... (bit mask). */
enum log_subsys {
    LOG_SUB_NET = 1u << 0,
    LOG_SUB_AUTH = 1u << 1,
    LOG_SUB_CACHE = 1u << 2,
    LOG_SUB_SYNC = 1u << 3,
    LOG_SUB_CONSENT = 1u << 4,
    LOG_SUB_GATE = 1u << 5,
    LOG_SUB_LISTENER = 1u << 6,
    LOG_SUB_OUTBOX = 1u << 7,
    LOG_SUB_CONFIG = 1u << 8,
    LOG_SUB_ALL = 0x1ffu,
};

extern enum log_level log_level_current;
extern unsigned log_debug_mask;

void log_emit(enum log_level level, const char *fmt, ...) ATTR_PRINTFLIKE(2, 3);

#define log_error(...)                                                         \
    do {                                                                       \
        if (LOG_ERROR <= log_level_current)                                    \
            log_emit(LOG_ERROR, __VA_ARGS__);                                  \
    } while (0)
#define log_warn(...)                                                          \
    do {                                                                       \
        if (LOG_WARN <= log_level_current)                                     \
            log_emit(LOG_WARN, __VA_ARGS__);                                   \
    } while (0)
#define log_notice(...)                                                        \
    do {                                                                       \
        if (LOG_NOTICE <= log_level_current)                                   \
            log_emit(LOG_NOTICE, __VA_ARGS__);                                 \
    } while (0)
#define log_info(...)                                                          \
    do {                                                                       \
        if (LOG_INFO <= log_level_current)                                     \
            log_emit(LOG_INFO, __VA_ARGS__);                                   \
    } while (0)
/* Debug lines show at level debug, or when their subsystem is enabled. */
#define log_debug(sub, ...)                                                    \
    do {                                                                       \
        if (LOG_DEBUG <= log_level_current || (log_debug_mask & (sub)))        \
            log_emit(LOG_DEBUG, __VA_ARGS__);                                  \
    } while (0)

/* Where lines go (stderr by default); tests capture them in a file. */
void log_set_output(FILE *fp);

/*
 * Lines go to the file at `path` from now on, appended (O_APPEND: each
 * line is one write, so several processes may share it).  Returns 0 or
 * ERR_FAIL with err_set (ERR_CLASS_CONFIG: the operator's path).
 */
int log_file_open(const char *path);

/*
 * Opens the log file again by its name (SIGHUP after logrotate moved it)
 * and puts it in place of the old one with dup2: a line being written
 * goes whole to one file or the other, none is lost.  Any thread; a
 * no-op without log_file_open.  Returns 0 or ERR_FAIL (the old file
 * stays in use).
 */
int log_file_reopen(void);

/* Closes the log_file_open file; lines go to stderr again.  Only when no
 * other thread logs any more (at exit, in tests). */
void log_file_close(void);

/* "error", "warn", "notice", "info", "debug" → level; -1 when unknown. */
int log_level_parse(const char *name);
const char *log_level_name(enum log_level level);

/*
 * Parses "net,gate,cache" (or "all") into a mask.
 * Returns 0, or ERR_BADINPUT with err_set() naming the unknown subsystem.
 */
int log_debug_parse(unsigned *out, const char *list);

/*
 * Quotes a value for a key=value line when it needs it (spaces, quotes,
 * '=', control characters) and truncates it to 200 bytes.  The result
 * lives in a small per-thread ring, valid for the next few calls: use it
 * directly as a log argument.
 */
const char *log_q(const char *value);

/*
 * A phone number for a log line, masked ("+49151*****441"): enough for an
 * operator to tell numbers apart, not a copy of the customer's number.
 * The ledger keeps the full number.  Same ring as log_q().
 */
const char *log_phone(const char *e164);

#endif
