/*
 * err — thread-local last error.  See err.h.
 */
#include "err.h"

#include <stdio.h>
#include <string.h>

#define ERR_MSG_MAX 1024

static _Thread_local char last_msg[ERR_MSG_MAX];
static _Thread_local enum err_class last_class;

void err_vset(enum err_class cls, const char *fmt, va_list ap)
{
    vsnprintf(last_msg, sizeof(last_msg), fmt, ap);
    last_class = cls;
}

void err_set(enum err_class cls, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    err_vset(cls, fmt, ap);
    va_end(ap);
}

void err_prefix(const char *fmt, ...)
{
    char old[ERR_MSG_MAX];
    size_t n;
    va_list ap;

    memcpy(old, last_msg, sizeof(old));
    va_start(ap, fmt);
    vsnprintf(last_msg, sizeof(last_msg), fmt, ap);
    va_end(ap);
    n = strlen(last_msg);
    /* Truncation is fine here: the message is for people. */
    if (old[0] && n + 2 < sizeof(last_msg)) {
        memcpy(last_msg + n, ": ", 3);
        strncat(last_msg + n + 2, old, sizeof(last_msg) - n - 3);
    }
}

const char *err_message(void)
{
    return last_msg;
}

enum err_class err_class_last(void)
{
    return last_class;
}

void err_clear(void)
{
    last_msg[0] = '\0';
    last_class = ERR_CLASS_NONE;
}

const char *err_code_name(int code)
{
    switch (code) {
    case ERR_OK: return "ok";
    case ERR_NOTFOUND: return "notfound";
    case ERR_CONFLICT: return "conflict";
    case ERR_AUTH: return "auth";
    case ERR_THROTTLED: return "throttled";
    case ERR_BADINPUT: return "badinput";
    case ERR_TOOBIG: return "toobig";
    default: return "fail";
    }
}

int err_exit_code(void)
{
    switch (last_class) {
    case ERR_CLASS_USAGE:
    case ERR_CLASS_CONFIG:
    case ERR_CLASS_INPUT: return EXIT_USAGE;
    case ERR_CLASS_NET:
    case ERR_CLASS_AUTH:
    case ERR_CLASS_DATAVERSE: return EXIT_REMOTE;
    default: return EXIT_LOCAL;
    }
}
