/* Names and meanings of injectable faults (contract in moat/platform_abi.h).
 * Freestanding: the VMM, moatctl and the guest kernel share one table. */
#include "moat/platform_abi.h"

static const struct { const char *name, *what; } faults[MOAT_FAULT_MAX + 1] = {
    [MOAT_FAULT_KILL] = { "kill", "fail-stop the domain as if it crashed" },
    [MOAT_FAULT_TRIPLE_FAULT] = { "triple-fault", "the guest kernel loses its IDT and faults" },
    [MOAT_FAULT_HANG] = { "hang", "the guest kernel spins with interrupts off (watchdog)" },
    [MOAT_FAULT_SPIN] = { "spin", "the driver spins and stops its heartbeat (watchdog)" },
    [MOAT_FAULT_PANIC] = { "panic", "the driver panics" },
    [MOAT_FAULT_WILD_DMA_PRIVATE] = { "wild-dma-private",
                                      "the driver aims its device's DMA at private RAM" },
    [MOAT_FAULT_WILD_DMA_OTHER] = { "wild-dma-other",
                                    "the driver aims its device's DMA at another domain's window" },
    [MOAT_FAULT_WILD_DMA_END] = { "wild-dma-end",
                                  "the driver's device DMA runs past the end of its window" },
    [MOAT_FAULT_WILD_MMIO] = { "wild-mmio", "the guest touches MMIO outside every BAR" },
    [MOAT_FAULT_CORRUPT_SESSION] = { "corrupt-session",
                                     "the guest corrupts a cap session's ring index" },
    [MOAT_FAULT_CORRUPT_DEVICE] = { "corrupt-device",
                                    "the driver corrupts its device's ring index" },
    [MOAT_FAULT_EXIT_DMA] = { "exit-dma", "the driver exits (code 1) with DMA in flight" },
    [MOAT_FAULT_CRASH_LOOP] = { "crash-loop",
                                "kill it, and again each time it is ready, until the breaker opens" },
    [MOAT_FAULT_FATAL_STORM] = { "fatal-storm",
                                 "the driver resets its device into a fatal state, 64 times" },
};

const char *moat_fault_name(uint32_t kind)
{
    return kind && kind <= MOAT_FAULT_MAX ? faults[kind].name : "unknown";
}

const char *moat_fault_what(uint32_t kind)
{
    return kind && kind <= MOAT_FAULT_MAX ? faults[kind].what : "unknown";
}

uint32_t moat_fault_parse(const char *name)
{
    for (uint32_t k = 1; k <= MOAT_FAULT_MAX; k++) {
        const char *a = faults[k].name, *b = name;
        while (*a && *a == *b)
            a++, b++;
        if (!*a && !*b)
            return k;
    }
    return 0;
}
