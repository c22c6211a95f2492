/* entrycheck — an app domain of the bare monitor that measures what one
 * entry into the monitor costs from ring 3: `calls=N` (default 20000)
 * system calls through the int3 gate (a kick on no session: refused at
 * once and counted by the monitor, nothing else done), timed with the TSC. The ring3 side of the
 * svm-probe console command (svm.h). Logs "entrycheck NAME: N system
 * calls (int3 round trips) in T us: R per second", then exits (code 0). */
#include "dd.h"
#include "gk/cpu.h"
#include "gk/platform.h"
#include "gk/sys.h"
#include "gk/timer.h"

void domain_main(const char *args)
{
    uint32_t n = dd_arg_u32(args, "calls", 20000, 1, 10000000);
    uint64_t khz = timer_tsc_khz(), t0 = rdtsc();
    for (uint32_t i = 0; i < n; i++)
        sys_call3(SYS_SESSION_KICK, 99u, 0, 0);
    uint64_t tsc = rdtsc() - t0;
    dd_log("entrycheck %s: %u system calls (int3 round trips) in %lu us: %lu per second",
           platform_boot_info()->name, n, tsc * 1000 / khz, khz * 1000u * n / (tsc ? tsc : 1));
    sys_exit(0);
}
