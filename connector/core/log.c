/*
 * log — see log.h.  One write per line, so lines from several threads
 * never interleave.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

#define LINE_MAX_BYTES 2048
#define Q_SLOTS 8
#define Q_MAX 200

enum log_level log_level_current = LOG_INFO;
unsigned log_debug_mask;

static FILE *log_fp;
static char *log_path; /* log_file_open's file, for reopening */

static const char *const level_names[] = {
    "error", "warn", "notice", "info", "debug",
};

static const struct {
    const char *name;
    unsigned bit;
} subsystems[] = {
    { "net", LOG_SUB_NET },           { "auth", LOG_SUB_AUTH },
    { "cache", LOG_SUB_CACHE },       { "sync", LOG_SUB_SYNC },
    { "consent", LOG_SUB_CONSENT },   { "gate", LOG_SUB_GATE },
    { "listener", LOG_SUB_LISTENER }, { "outbox", LOG_SUB_OUTBOX },
    { "config", LOG_SUB_CONFIG },     { "all", LOG_SUB_ALL },
};

void log_set_output(FILE *fp)
{
    log_fp = fp;
}

static int open_append(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

    if (fd < 0)
        err_set(ERR_CLASS_CONFIG, "cannot open log file %s: %s", path,
                strerror(errno));
    return fd;
}

int log_file_open(const char *path)
{
    int fd = open_append(path);
    FILE *fp;

    if (fd < 0)
        return ERR_FAIL;
    fp = fdopen(fd, "a");
    if (!fp) {
        close(fd);
        err_set(ERR_CLASS_OS, "cannot open log file %s", path);
        return ERR_FAIL;
    }
    free(log_path);
    log_path = strdup(path);
    log_fp = fp; /* before any thread: no line is being written */
    return 0;
}

int log_file_reopen(void)
{
    int fd;

    if (!log_path || !log_fp)
        return 0;
    fd = open_append(log_path);
    if (fd < 0)
        return ERR_FAIL;
    /* Every line is flushed as it is written, so the FILE holds nothing
     * buffered for the old file; dup2 swaps the descriptor atomically. */
    if (dup2(fd, fileno(log_fp)) < 0) {
        err_set(ERR_CLASS_OS, "cannot reopen log file %s: %s", log_path,
                strerror(errno));
        close(fd);
        return ERR_FAIL;
    }
    close(fd);
    return 0;
}

void log_file_close(void)
{
    if (!log_path)
        return;
    if (log_fp)
        fclose(log_fp);
    log_fp = NULL;
    free(log_path);
    log_path = NULL;
}

const char *log_level_name(enum log_level level)
{
    if ((unsigned)level >= sizeof(level_names) / sizeof(level_names[0]))
        return "?";
    return level_names[level];
}

int log_level_parse(const char *name)
{
    size_t i;

    for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (strcasecmp(name, level_names[i]) == 0)
            return (int)i;
    return -1;
}

static int subsystem_bit(const char *name, size_t len, unsigned *bit)
{
    size_t i;

    for (i = 0; i < sizeof(subsystems) / sizeof(subsystems[0]); i++) {
        if (strlen(subsystems[i].name) == len &&
            strncasecmp(subsystems[i].name, name, len) == 0) {
            *bit = subsystems[i].bit;
            return 0;
        }
    }
    return ERR_BADINPUT;
}

int log_debug_parse(unsigned *out, const char *list)
{
    unsigned mask = 0, bit;
    const char *p = list;

    while (*p) {
        size_t len = strcspn(p, ",");

        if (len > 0 && subsystem_bit(p, len, &bit) != 0) {
            err_set(ERR_CLASS_USAGE,
                    "unknown debug subsystem '%.*s' (known: net, auth, "
                    "cache, sync, consent, gate, listener, outbox, config, "
                    "all)",
                    (int)len, p);
            return ERR_BADINPUT;
        }
        if (len > 0)
            mask |= bit;
        p += len;
        if (*p == ',')
            p++;
    }
    *out = mask;
    return 0;
}

static size_t format_timestamp(char *buf, size_t n)
{
    int64_t ms = clock_now_ms();
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    size_t len;

    gmtime_r(&secs, &tm);
    len = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
    return len +
           (size_t)snprintf(buf + len, n - len, ".%03dZ", (int)(ms % 1000));
}

void log_emit(enum log_level level, const char *fmt, ...)
{
    char line[LINE_MAX_BYTES];
    size_t len;
    int n;
    va_list ap;
    FILE *fp = log_fp ? log_fp : stderr;

    len = (size_t)snprintf(line, sizeof(line), "ts=");
    len += format_timestamp(line + len, sizeof(line) - len);
    len += (size_t)snprintf(line + len, sizeof(line) - len,
                            " level=%s event=", log_level_name(level));
    va_start(ap, fmt);
    n = vsnprintf(line + len, sizeof(line) - len - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    len += (size_t)n;
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2; /* truncated: still one line */
    line[len++] = '\n';
    fwrite(line, 1, len, fp);
    fflush(fp);
}

static int needs_quotes(const char *s)
{
    if (!*s)
        return 1;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == '"' || *s == '=' || *s == '\\' ||
            *s == 0x7f)
            return 1;
    return 0;
}

/* The next buffer of this thread's small ring for formatted values. */
static char *ring_slot(void)
{
    static _Thread_local char ring[Q_SLOTS][Q_MAX * 4 + 8];
    static _Thread_local unsigned slot;

    return ring[slot++ % Q_SLOTS];
}

const char *log_q(const char *value)
{
    char *out = ring_slot();
    size_t o = 0, i;

    if (!value)
        return "-";
    if (!needs_quotes(value) && strlen(value) <= Q_MAX)
        return value;
    out[o++] = '"';
    for (i = 0; i < Q_MAX && value[i]; i++) {
        unsigned char c = (unsigned char)value[i];

        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < ' ' || c == 0x7f) {
            o += (size_t)snprintf(out + o, 5, "\\x%02x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    if (value[i]) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

const char *log_phone(const char *e164)
{
    char *masked = ring_slot();
    size_t n, i;

    if (!e164)
        return "-";
    n = strlen(e164);
    if (n > 32)
        n = 32;
    /* Only key characters ('+' and digits) are copied: safe unquoted. */
    for (i = 0; i < n; i++) {
        char ch = e164[i] == '+' || (e164[i] >= '0' && e164[i] <= '9') ? e164[i]
                                                                       : '?';

        masked[i] = (i < 6 || i + 3 >= n) ? ch : '*';
    }
    masked[n] = '\0';
    return masked;
}
