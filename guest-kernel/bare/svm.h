/*
 * svm.h — the first piece of the svm isolation backend (docs/bare-
 * isolation.md): AMD SVM with nested paging, probed and measured. The
 * monitor enables SVM, builds nested page tables that map the first 4 GiB
 * one to one, and enters a minimal guest in long mode on its own tables
 * whose code is a VMMCALL loop: every VMMCALL is a #VMEXIT the monitor
 * takes and answers by resuming the guest past it. That measures what a
 * domain entry and exit cost under SVM, beside what ring 3's int3 round
 * trip costs. No domain runs as an SVM guest yet.
 */
#ifndef BARE_SVM_H
#define BARE_SVM_H

#include <stdbool.h>
#include <stdint.h>

/* Does this CPU offer SVM with nested paging (and has firmware left it
 * enabled: VM_CR.SVMDIS clear)? why says what is missing. */
bool svm_offered(const char **why);
/* Enter the probe guest n times (each a VMRUN and a VMMCALL #VMEXIT);
 * false (and *why) when SVM is not offered or the guest exits for another
 * reason (its exit code in *exit_code). *tsc gets the TSC ticks spent. */
bool svm_probe(uint32_t n, uint64_t *tsc, uint64_t *exit_code, const char **why);

#endif /* BARE_SVM_H */
