/*
 * err — return codes and the thread-local "last error" message.
 *
 * Every fallible function returns int: 0 on success, a negative ERR_* code
 * on failure.  A function lists in its header comment the two or three
 * *expected* codes a caller may want to branch on; everything else is
 * ERR_FAIL.  Details go to err_set(): one line, no context the caller
 * already has.  Codes are passed up unchanged, never overwritten.
 *
 * The class says where a failure comes from, which decides the process
 * exit code (docs/design.md): config → 2, remote (net, auth, dataverse) → 3,
 * local (db, os) → 4.
 */
#ifndef OPTSYNC_ERR_H
#define OPTSYNC_ERR_H

#include <stdarg.h>

#if defined(__GNUC__)
#define ATTR_PRINTFLIKE(fmt, args) __attribute__((format(printf, fmt, args)))
#define ATTR_NORETURN __attribute__((noreturn))
#else
#define ATTR_PRINTFLIKE(fmt, args)
#define ATTR_NORETURN
#endif

enum {
    ERR_OK = 0,
    ERR_FAIL = -1,      /* anything not listed below */
    ERR_NOTFOUND = -2,  /* the thing asked for does not exist */
    ERR_CONFLICT = -3,  /* someone else changed it first (412, lock held) */
    ERR_AUTH = -4,      /* credentials refused */
    ERR_THROTTLED = -5, /* told to wait (429 / 503 with Retry-After) */
    ERR_BADINPUT = -6,  /* input rejected; retrying it will not help */
    ERR_TOOBIG = -7,    /* input over a configured or built-in cap */
};

enum err_class {
    ERR_CLASS_NONE = 0,
    ERR_CLASS_USAGE,     /* command line */
    ERR_CLASS_CONFIG,    /* config file, mapping file */
    ERR_CLASS_INPUT,     /* a payload or value from outside */
    ERR_CLASS_NET,       /* HTTP transport */
    ERR_CLASS_AUTH,      /* Entra ID */
    ERR_CLASS_DATAVERSE, /* Web API said no */
    ERR_CLASS_DB,        /* SQLite */
    ERR_CLASS_OS,        /* files, processes */
};

/* Process exit codes, everywhere (docs/design.md). */
enum {
    EXIT_OK = 0,
    EXIT_NEGATIVE = 1, /* a gate deny, a tampered ledger, problems found */
    EXIT_USAGE = 2,    /* usage or config error */
    EXIT_REMOTE = 3,   /* authentication, network, Dataverse after retries */
    EXIT_LOCAL = 4,    /* database, disk */
};

/* Records the last error of this thread (replacing any earlier one). */
void err_set(enum err_class cls, const char *fmt, ...) ATTR_PRINTFLIKE(2, 3);
void err_vset(enum err_class cls, const char *fmt, va_list ap)
    ATTR_PRINTFLIKE(2, 0);

/* Prefixes the current message with more context: "ctx: old message". */
void err_prefix(const char *fmt, ...) ATTR_PRINTFLIKE(1, 2);

/* The last message ("" when none); valid until the next err_* call. */
const char *err_message(void);
enum err_class err_class_last(void);
void err_clear(void);

/* Name of an ERR_* code, for logs ("notfound"). */
const char *err_code_name(int code);

/* Exit code for the last error's class (EXIT_LOCAL when unknown). */
int err_exit_code(void);

#endif
