/* Crash records (contract in crash.h). */
#include <stdio.h>
#include <string.h>
#include "crash.h"
#include "enum_name.h"

static const char *const cause_names[] = {
    [CRASH_NONE] = "none",
    [CRASH_TRIPLE_FAULT] = "triple fault",
    [CRASH_INTERNAL_ERROR] = "KVM internal error",
    [CRASH_FAILED_ENTRY] = "failed VM entry",
    [CRASH_EXCEPTION] = "exception",
    [CRASH_PANIC] = "panic",
    [CRASH_WATCHDOG] = "watchdog timeout",
    [CRASH_BOOT_TIMEOUT] = "boot timeout",
    [CRASH_POLICY] = "policy violation",
    [CRASH_UNHANDLED_EXIT] = "unhandled exit",
    [CRASH_VMM_ERROR] = "VMM error",
    [CRASH_INJECTED] = "injected fault",
};

const char *crash_cause_name(enum crash_cause c)
{
    return ENUM_NAME(cause_names, c);
}

void crash_sanitize(char *s, size_t len)
{
    for (size_t i = 0; i < len && s[i]; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7E)
            s[i] = '?';
}

static const char *vector_mnemonic(uint32_t v)
{
    static const char *const m[32] = {
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO",
        "#TS", "#NP", "#SS", "#GP", "#PF", "res15", "#MF", "#AC", "#MC", "#XM",
        "#VE", "#CP", "res22", "res23", "res24", "res25", "res26", "res27",
        "#HV", "#VC", "#SX", "res31",
    };
    return v < 32 ? m[v] : "?";
}

void crash_from_guest_record(const struct moat_crash_record *shared,
                             struct crash_info *out)
{
    /* One copy out of guest memory; everything below reads the copy. */
    struct moat_crash_record rec;
    memcpy(&rec, shared, sizeof rec);
    rec.message[sizeof rec.message - 1] = '\0';
    crash_sanitize(rec.message, sizeof rec.message);

    memset(out, 0, sizeof *out);
    out->regs = rec.regs;
    out->have_regs = true;
    if (rec.kind == MOAT_CRASH_EXCEPTION && rec.vector < 32) {
        out->cause = CRASH_EXCEPTION;
        out->vector = rec.vector;
        out->error_code = rec.error_code;
        if (rec.vector == 14)
            snprintf(out->detail, sizeof out->detail,
                     "%s vector %u error 0x%llx at RIP 0x%llx, CR2 0x%llx",
                     vector_mnemonic(rec.vector), rec.vector,
                     (unsigned long long)rec.error_code,
                     (unsigned long long)rec.regs.rip, (unsigned long long)rec.regs.cr2);
        else
            snprintf(out->detail, sizeof out->detail,
                     "%s vector %u error 0x%llx at RIP 0x%llx",
                     vector_mnemonic(rec.vector), rec.vector,
                     (unsigned long long)rec.error_code, (unsigned long long)rec.regs.rip);
    } else if (rec.kind == MOAT_CRASH_PANIC) {
        out->cause = CRASH_PANIC;
        snprintf(out->detail, sizeof out->detail, "\"%s\" near RIP 0x%llx",
                 rec.message, (unsigned long long)rec.regs.rip);
    } else {
        out->cause = CRASH_PANIC;
        out->have_regs = false;
        snprintf(out->detail, sizeof out->detail,
                 "guest reported a crash with an invalid record (kind %u, vector %u)",
                 rec.kind, rec.vector);
    }
}

bool crash_from_exit(const struct kvm_run *run, struct crash_info *out)
{
    memset(out, 0, sizeof *out);
    switch (run->exit_reason) {
    case KVM_EXIT_SHUTDOWN:
        out->cause = CRASH_TRIPLE_FAULT;
        snprintf(out->detail, sizeof out->detail,
                 "CPU shut down (triple fault: an exception could not be delivered)");
        return true;
    case KVM_EXIT_INTERNAL_ERROR:
        out->cause = CRASH_INTERNAL_ERROR;
        snprintf(out->detail, sizeof out->detail,
                 "suberror %u%s", run->internal.suberror,
                 run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION
                     ? " (instruction emulation failed)" : "");
        return true;
    case KVM_EXIT_FAIL_ENTRY:
        out->cause = CRASH_FAILED_ENTRY;
        snprintf(out->detail, sizeof out->detail,
                 "hardware entry failure reason 0x%llx",
                 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
        return true;
    case KVM_EXIT_IO:
    case KVM_EXIT_MMIO:
    case KVM_EXIT_INTR:
    case KVM_EXIT_HLT:
    case KVM_EXIT_IRQ_WINDOW_OPEN:
        return false;
    default:
        out->cause = CRASH_UNHANDLED_EXIT;
        snprintf(out->detail, sizeof out->detail, "exit reason %u is not served by moat",
                 run->exit_reason);
        return true;
    }
}
