/* fuzz_common.h - helpers for the libFuzzer targets.
 *
 * memfd_create is a GNU extension: a target that includes this header
 * defines _GNU_SOURCE above its first #include (as src/ files do with the
 * feature macros they need), so that the build is the same with gcc and
 * clang at -std=c11. */
#ifndef VC_FUZZ_COMMON_H
#define VC_FUZZ_COMMON_H

#ifndef _GNU_SOURCE
#error "define _GNU_SOURCE before the first #include (fuzz_common.h needs memfd_create)"
#endif

#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

/* The loaders take paths (they map files): hand them the input through a
 * memory file. Returns the fd (close it after use) and writes its path. */
static inline int fuzz_memfile(const uint8_t *data, size_t size, char *path, size_t path_size)
{
    int fd = memfd_create("fuzz", 0);
    if (fd < 0)
        return -1;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return -1;
    }
    snprintf(path, path_size, "/proc/self/fd/%d", fd);
    return fd;
}

#endif
