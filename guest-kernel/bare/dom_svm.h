/*
 * dom_svm.h — the isolation backends of the bare monitor's domains
 * (docs/bare-isolation.md), chosen once at boot for all of them:
 *
 *   ring3  the domain runs in ring 3 on page tables of its own;
 *   svm    the same, inside an AMD SVM guest with nested paging: its page
 *          tables are the monitor's as in ring3 (no virtual address of
 *          the guest reaches them, and it runs in ring 3: it cannot load
 *          CR3), and its nested tables map, one to one, exactly the pages
 *          those tables give it (image, stack, heap, shared pages,
 *          windows, session memory) and the tables themselves.
 *          A translation that leaves that map — a page-table walk into
 *          the monitor's, say — is a nested page fault: a policy
 *          violation that ends the domain. Every exception, interrupt,
 *          NMI, INTn, HLT, I/O and MSR access and SVM instruction exits to
 *          the monitor; the int3 system call exits too and is served by
 *          the same code as in ring3.
 *
 * moat.isolation=ring3|svm|auto on the kernel's command line (auto, the
 * default: svm where the CPU offers SVM with nested paging).
 */
#ifndef BARE_DOM_SVM_H
#define BARE_DOM_SVM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dom;

/* Choose the backend from the command line and the CPU; says so on the
 * console (one line). */
void dom_isolation_choose(const char *cmdline);
/* Say the choice again (the console's status). */
void dom_isolation_line(void);
bool dom_isolation_svm(void);

/* d's tables now map [pa, pa + bytes) with the ring-3 rights pte_flags
 * (PTE_W, PTE_NX): under svm its nested map follows. False when memory
 * for a nested table runs out. No-ops under ring3. */
bool dom_svm_map(struct dom *d, uint64_t pa, uint64_t bytes, uint64_t pte_flags);
/* The page at pa is one of d's page tables: the guest's walks read it
 * through the nested map. */
bool dom_svm_map_table(struct dom *d, uint64_t pa);
/* d's tables no longer map [pa, pa + bytes): nor does its nested map,
 * and its TLB is flushed before it runs again. */
void dom_svm_unmap(struct dom *d, uint64_t pa, uint64_t bytes);
/* d (re)starts: its VMCB. NULL, or why not. */
const char *dom_svm_start(struct dom *d);
/* Run d (the current domain) as an SVM guest from d->frame until it
 * leaves the CPU (through dom_return or dom_fault, like a ring-3 trap). */
_Noreturn void dom_svm_run(struct dom *d);
/* "ring 3" or "svm guest, ASID 3, 1234 pages mapped, 56789 exits, ..." */
void dom_isolation_describe(const struct dom *d, char *out, size_t len);

#endif /* BARE_DOM_SVM_H */
