/* meminfo.c - see include/core/meminfo.h */
#define _POSIX_C_SOURCE 200809L
#include "core/meminfo.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

size_t vc_mem_rss(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size, resident;
    size_t rss = 0;
    if (f && fscanf(f, "%lu %lu", &size, &resident) == 2)
        rss = (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
    if (f)
        fclose(f);
    return rss;
}

size_t vc_mem_peak_rss(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (size_t)ru.ru_maxrss * 1024 : 0;
}

size_t vc_mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    size_t kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %zu kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb * 1024;
}

size_t vc_mem_cgroup_limit(void)
{
    const char *paths[] = { "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes" };
    for (size_t i = 0; i < 2; i++) {
        FILE *f = fopen(paths[i], "r");
        char buf[64] = { 0 };
        if (!f)
            continue;
        bool got = fgets(buf, sizeof buf, f) != NULL;
        fclose(f);
        unsigned long long v;
        if (got && strncmp(buf, "max", 3) != 0 && sscanf(buf, "%llu", &v) == 1 && v < (1ull << 60))
            return (size_t)v;
    }
    return 0;
}

size_t vc_mem_address_space_left(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return 0;
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (f && fscanf(f, "%lu", &pages) != 1)
        pages = 0;
    if (f)
        fclose(f);
    size_t used = (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
    return (size_t)rl.rlim_cur > used ? (size_t)rl.rlim_cur - used : 1;
}

double vc_mem_pressure(void)
{
    FILE *f = fopen("/proc/pressure/memory", "r");
    double avg10 = -1;
    if (f && fscanf(f, "some avg10=%lf", &avg10) != 1)
        avg10 = -1;
    if (f)
        fclose(f);
    return avg10;
}

bool vc_mem_under_pressure(size_t budget)
{
    size_t avail = vc_mem_available(), rss = vc_mem_rss();
    bool near_budget = budget && rss > budget / 10 * 9;
    return near_budget || (avail && avail < ((size_t)256 << 20)) || vc_mem_pressure() > 10.0;
}
