/* meminfo.h - what memory the process uses and the system has left. */
#ifndef VC_CORE_MEMINFO_H
#define VC_CORE_MEMINFO_H

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

#endif
