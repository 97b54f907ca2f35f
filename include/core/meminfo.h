/* meminfo.h - what memory the process uses and the system has left. */
#ifndef VC_CORE_MEMINFO_H
#define VC_CORE_MEMINFO_H

#include <stdbool.h>
#include <stddef.h>

/* Resident set size now (bytes), from /proc/self/statm; 0 if unknown. */
size_t vc_mem_rss(void);
/* Peak RSS (bytes). */
size_t vc_mem_peak_rss(void);
/* MemAvailable from /proc/meminfo (bytes); 0 if unknown. */
size_t vc_mem_available(void);
/* The cgroup v2 (or v1) memory limit of this process (bytes); 0 if none. */
size_t vc_mem_cgroup_limit(void);
/* Address space still allowed under RLIMIT_AS (ulimit -v), in bytes; 0 if unlimited. */
size_t vc_mem_address_space_left(void);
/* PSI "some" avg10 for memory (percent), or -1 where PSI is absent. */
double vc_mem_pressure(void);

/* True when memory is short: the process above 90% of `budget` (0: no
 * budget), under 256 MiB available on the system, or PSI stalls above 10%.
 * Callers then drop what they can rebuild (image features, caches). */
bool vc_mem_under_pressure(size_t budget);

#endif
