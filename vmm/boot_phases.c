/* Per-phase bring-up times (contract in boot_phases.h). */
#include <stdio.h>
#include <string.h>
#include "boot_phases.h"

static const char *const names[BOOT_PHASES] = {
    [BOOT_PH_VM] = "vm", [BOOT_PH_WINDOWS] = "windows", [BOOT_PH_IMAGE] = "image",
    [BOOT_PH_VCPU] = "vcpu", [BOOT_PH_THREAD] = "thread", [BOOT_PH_KERNEL] = "kernel",
    [BOOT_PH_DEVICE] = "device", [BOOT_PH_QUEUES] = "queues", [BOOT_PH_CAPS] = "caps",
    [BOOT_PH_ANNOUNCE] = "announce",
};

const char *boot_phase_name(enum boot_phase p)
{
    return (unsigned)p < BOOT_PHASES ? names[p] : "unknown";
}

/* Host stamps may be missing (0) on a partial build: a phase is known when
 * both its ends are stamped in order. */
static void host_phase(struct boot_phases *o, enum boot_phase p, uint64_t from, uint64_t to)
{
    if (from && to >= from) {
        o->ns[p] = to - from;
        o->known[p] = true;
    }
}

void boot_phases_compute(const struct boot_stamps *s, struct boot_phases *o)
{
    memset(o, 0, sizeof *o);
    o->total_ns = s->ready_ns >= s->start_ns ? s->ready_ns - s->start_ns : 0;
    host_phase(o, BOOT_PH_VM, s->start_ns, s->vm_ns);
    host_phase(o, BOOT_PH_WINDOWS, s->vm_ns, s->windows_ns);
    host_phase(o, BOOT_PH_IMAGE, s->windows_ns, s->image_ns);
    host_phase(o, BOOT_PH_VCPU, s->image_ns, s->vcpu_ns);
    host_phase(o, BOOT_PH_THREAD, s->vcpu_ns, s->first_run_ns);
    if (!s->first_run_ns || s->ready_ns < s->first_run_ns)
        return;

    /* Guest steps: each mark closes one phase, READY closes the last. */
    static const struct { enum moat_boot_mark mark; enum boot_phase phase; } steps[] = {
        { MOAT_BOOT_USER, BOOT_PH_KERNEL }, { MOAT_BOOT_DEVICE, BOOT_PH_DEVICE },
        { MOAT_BOOT_QUEUES, BOOT_PH_QUEUES }, { MOAT_BOOT_CAPS, BOOT_PH_CAPS },
    };
    const uint64_t base_tsc = s->guest_tsc[MOAT_BOOT_KERNEL];
    const uint64_t span_ns = s->ready_ns - s->first_run_ns;
    uint64_t prev_ns = 0, prev_tsc = base_tsc;      /* since first_run */
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        uint64_t tsc = s->guest_tsc[steps[i].mark];
        if (!tsc)
            continue;
        if (!base_tsc || !s->tsc_khz || tsc < prev_tsc) {
            o->marks_refused++;
            continue;
        }
        /* ticks / kHz = ms; in two steps so neither overflows for any
         * boot shorter than a few hours. */
        uint64_t ticks = tsc - base_tsc, ms = ticks / s->tsc_khz;
        uint64_t at = ms <= span_ns / 1000000u
                          ? ms * 1000000u + ticks % s->tsc_khz * 1000000u / s->tsc_khz
                          : UINT64_MAX;
        if (at > span_ns || at < prev_ns) {
            o->marks_refused++;
            continue;
        }
        o->ns[steps[i].phase] = at - prev_ns;
        o->known[steps[i].phase] = true;
        prev_ns = at;
        prev_tsc = tsc;
    }
    o->ns[BOOT_PH_ANNOUNCE] = span_ns - prev_ns;
    o->known[BOOT_PH_ANNOUNCE] = true;
}

void boot_phases_format(const struct boot_phases *p, char *buf, size_t len)
{
    size_t at = 0;
    if (len)
        buf[0] = '\0';
    for (int i = 0; i < BOOT_PHASES && at < len; i++) {
        int n = p->known[i]
                    ? snprintf(buf + at, len - at, "%s%s %.2f", i ? ", " : "", names[i],
                               (double)p->ns[i] / 1e6)
                    : snprintf(buf + at, len - at, "%s%s -", i ? ", " : "", names[i]);
        if (n < 0)
            break;
        at += (size_t)n;
    }
}
