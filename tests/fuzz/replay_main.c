/*
 * replay_main — runs a fuzz target over its committed corpus without
 * libFuzzer (libgit2's "standalone" mode), so every ctest run replays the
 * seeds and every past crash under the normal and sanitizer builds.
 *
 * Usage: fuzz_<name>_replay DIR|FILE...
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fileio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    char *data = NULL;
    size_t len = 0;

    if (fileio_read(&data, &len, path, 64 * 1024 * 1024) != 0) {
        fprintf(stderr, "cannot read %s\n", path);
        return 1;
    }
    LLVMFuzzerTestOneInput((const uint8_t *)data, len);
    free(data);
    return 0;
}

static int run_path(const char *path, int *count)
{
    struct stat st;
    struct dirent *e;
    DIR *d;
    char *child;
    int rc = 0;

    if (stat(path, &st) != 0) {
        fprintf(stderr, "no such corpus: %s\n", path);
        return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
        (*count)++;
        return run_file(path);
    }
    d = opendir(path);
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        child = malloc(strlen(path) + strlen(e->d_name) + 2);
        snprintf(child, strlen(path) + strlen(e->d_name) + 2, "%s/%s", path,
                 e->d_name);
        rc |= run_path(child, count);
        free(child);
    }
    if (d)
        closedir(d);
    return rc;
}

int main(int argc, char **argv)
{
    int i, rc = 0, count = 0;

    for (i = 1; i < argc; i++)
        rc |= run_path(argv[i], &count);
    printf("replayed %d inputs\n", count);
    if (count == 0) {
        fprintf(stderr, "empty corpus: nothing was replayed\n");
        return 1;
    }
    return rc;
}
