/*
 * emulator_proc.c - start and stop the emulators of tests/emulator/
 *
 * See emulator_proc.h. Test support only: it forks, execs python3 on an
 * emulator script, and parses `READY port=N` from the child's stdout.
 */
#define _POSIX_C_SOURCE 200809L

#include "emulator_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EMU_MAX_ARGS 64
#define EMU_READY_MAX 128
#define EMU_STOP_WAIT_MS 10000

static const char *source_dir(void)
{
    const char *env = getenv("OPTSYNC_SOURCE_DIR");

    if (env != NULL && env[0] != '\0')
        return env;
#ifdef OPTSYNC_SOURCE_DIR
    return OPTSYNC_SOURCE_DIR;
#else
    return NULL;
#endif
}

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long start_timeout_ms(void)
{
    const char *env = getenv("OPTSYNC_EMULATOR_TIMEOUT");
    char *end = NULL;
    long secs;

    if (env == NULL || env[0] == '\0')
        return 60000;
    secs = strtol(env, &end, 10);
    if (*end != '\0' || secs <= 0 || secs > 3600)
        return 60000;
    return secs * 1000;
}

static int set_cloexec(int fd)
{
    int flags = fcntl(fd, F_GETFD);

    if (flags < 0)
        return -1;
    return fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

/* A file name in tests/emulator/: not empty, no directory part. */
static int plain_name(const char *name)
{
    return name != NULL && name[0] != '\0' && strchr(name, '/') == NULL &&
           strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

/* argv for execvp: python, script path, --port 0, extras, NULL. */
static int build_argv(const char **argv, char *path, size_t path_size,
                      const char *name, const char *const *extra_args)
{
    const char *src = source_dir();
    const char *python = getenv("OPTSYNC_PYTHON");
    size_t n = 0;
    int len;

    if (src == NULL) {
        fprintf(stderr, "emulator_proc: OPTSYNC_SOURCE_DIR is not set\n");
        return -1;
    }
    len = snprintf(path, path_size, "%s/tests/emulator/%s", src, name);
    if (len < 0 || (size_t)len >= path_size) {
        fprintf(stderr, "emulator_proc: source path too long\n");
        return -1;
    }
    argv[n++] = (python != NULL && python[0] != '\0') ? python : "python3";
    argv[n++] = path;
    argv[n++] = "--port";
    argv[n++] = "0";
    while (extra_args != NULL && *extra_args != NULL) {
        if (n >= EMU_MAX_ARGS - 1) {
            fprintf(stderr, "emulator_proc: too many arguments\n");
            return -1;
        }
        argv[n++] = *extra_args++;
    }
    argv[n] = NULL;
    return 0;
}

static int uses_tls(const char *const *extra_args)
{
    while (extra_args != NULL && *extra_args != NULL) {
        if (strcmp(*extra_args++, "--tls-cert") == 0)
            return 1;
    }
    return 0;
}

/* Read one line from fd within timeout_ms; 0 on success, -1 otherwise. */
static int read_line(int fd, char *buf, size_t size, long timeout_ms)
{
    long deadline = now_ms() + timeout_ms;
    size_t used = 0;

    while (used + 1 < size) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN, .revents = 0 };
        long left = deadline - now_ms();
        ssize_t got;
        int rc;

        if (left <= 0)
            return -1;
        rc = poll(&pfd, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return -1;
        got = read(fd, buf + used, 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return -1;
        if (buf[used] == '\n') {
            buf[used] = '\0';
            return 0;
        }
        used++;
    }
    return -1;
}

static void exec_child(int pipe_w, const char **argv)
{
    if (dup2(pipe_w, STDOUT_FILENO) < 0)
        _exit(127);
    close(pipe_w);
    /* execvp takes char *const[]; the strings are not modified. */
    execvp(argv[0], (char *const *)(void *)argv);
    fprintf(stderr, "emulator_proc: cannot exec %s: %s\n", argv[0],
            strerror(errno));
    _exit(127);
}

static void reap(pid_t pid)
{
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

static int parse_ready(const char *line, int *port)
{
    char *end = NULL;
    long value;

    if (strncmp(line, "READY port=", 11) != 0)
        return -1;
    value = strtol(line + 11, &end, 10);
    if (*end != '\0' || value <= 0 || value > 65535)
        return -1;
    *port = (int)value;
    return 0;
}

int emulator_start_script(struct emulator_proc *out, const char *script,
                          const char *const *extra_args)
{
    const char *argv[EMU_MAX_ARGS];
    char path[4096];
    char line[EMU_READY_MAX];
    int fds[2] = { -1, -1 };
    int port = 0;
    pid_t pid;

    if (!plain_name(script)) {
        fprintf(stderr, "emulator_proc: not a script in tests/emulator: %s\n",
                script != NULL ? script : "(null)");
        return -1;
    }
    if (build_argv(argv, path, sizeof(path), script, extra_args) < 0)
        return -1;
    if (pipe(fds) < 0 || set_cloexec(fds[0]) < 0 || set_cloexec(fds[1]) < 0) {
        fprintf(stderr, "emulator_proc: pipe: %s\n", strerror(errno));
        goto fail;
    }
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "emulator_proc: fork: %s\n", strerror(errno));
        goto fail;
    }
    if (pid == 0)
        exec_child(fds[1], argv);
    close(fds[1]);
    fds[1] = -1;
    if (read_line(fds[0], line, sizeof(line), start_timeout_ms()) < 0 ||
        parse_ready(line, &port) < 0) {
        fprintf(stderr, "emulator_proc: %s did not report READY\n", script);
        kill(pid, SIGKILL);
        reap(pid);
        goto fail;
    }
    out->pid = pid;
    out->port = port;
    out->stdout_fd = fds[0];
    snprintf(out->base_url, sizeof(out->base_url), "%s://127.0.0.1:%d",
             uses_tls(extra_args) ? "https" : "http", port);
    return 0;

fail:
    if (fds[0] >= 0)
        close(fds[0]);
    if (fds[1] >= 0)
        close(fds[1]);
    return -1;
}

int emulator_start(struct emulator_proc *out, const char *const *extra_args)
{
    return emulator_start_script(out, EMULATOR_DATAVERSE, extra_args);
}

/* Wait for pid for up to ms milliseconds; 0 once reaped, -1 on timeout. */
static int wait_for(pid_t pid, long ms)
{
    long deadline = now_ms() + ms;

    for (;;) {
        pid_t rc = waitpid(pid, NULL, WNOHANG);

        if (rc == pid || (rc < 0 && errno == ECHILD))
            return 0;
        if (now_ms() >= deadline)
            return -1;
        /* No SIGCHLD handler to wait on in a test binary: poll at 10 ms. */
        poll(NULL, 0, 10);
    }
}

void emulator_stop(struct emulator_proc *emu)
{
    if (emu == NULL)
        return;
    if (emu->pid > 0) {
        kill(emu->pid, SIGTERM);
        if (wait_for(emu->pid, EMU_STOP_WAIT_MS) < 0) {
            kill(emu->pid, SIGKILL);
            reap(emu->pid);
        }
        emu->pid = 0;
    }
    if (emu->stdout_fd > 0) {
        close(emu->stdout_fd);
        emu->stdout_fd = -1;
    }
}
