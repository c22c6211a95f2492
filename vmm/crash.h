/*
 * crash.h — why a domain died, in one record the supervisor logs, tests
 * assert on and (later) the control API reports.
 *
 * Two pure entry points turn raw evidence into a crash_info:
 *  - crash_from_guest_record: the guest's self-report from the platform page.
 *    It is hostile input: copied once, kind and vector bounded, message
 *    forced printable and terminated. A garbled record still yields a crash
 *    (cause PANIC, detail says the record was invalid) — never a trusted lie.
 *  - crash_from_exit: a KVM exit that ends the domain (shutdown = triple
 *    fault, internal error, failed entry, unknown exit). Returns false for
 *    exits that are not fatal.
 */
#ifndef MOAT_CRASH_H
#define MOAT_CRASH_H

#include <stdbool.h>
#include <stdint.h>
#include <linux/kvm.h>
#include "moat/platform_abi.h"

enum crash_cause {
    CRASH_NONE = 0,
    CRASH_TRIPLE_FAULT,     /* KVM_EXIT_SHUTDOWN */
    CRASH_INTERNAL_ERROR,   /* KVM_EXIT_INTERNAL_ERROR */
    CRASH_FAILED_ENTRY,     /* KVM_EXIT_FAIL_ENTRY */
    CRASH_EXCEPTION,        /* guest-reported CPU exception */
    CRASH_PANIC,            /* guest-reported panic */
    CRASH_WATCHDOG,         /* heartbeat stopped */
    CRASH_BOOT_TIMEOUT,     /* never reached ready */
    CRASH_POLICY,           /* policy violation: fail-stopped */
    CRASH_UNHANDLED_EXIT,   /* exit reason moat does not serve */
    CRASH_VMM_ERROR,        /* moat could not run the domain */
    CRASH_INJECTED,         /* an operator injected a fault (moatctl inject) */
};

struct crash_info {
    enum crash_cause cause;
    uint32_t vector;            /* CRASH_EXCEPTION */
    uint64_t error_code;        /* CRASH_EXCEPTION */
    bool have_regs;
    struct moat_regs regs;
    char detail[256];           /* one printable line */
};

const char *crash_cause_name(enum crash_cause c);
void crash_from_guest_record(const struct moat_crash_record *shared,
                             struct crash_info *out);
bool crash_from_exit(const struct kvm_run *run, struct crash_info *out);
/* Replace every byte outside printable ASCII with '?'; stop at len or NUL. */
void crash_sanitize(char *s, size_t len);

#endif /* MOAT_CRASH_H */
