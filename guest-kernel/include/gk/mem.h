/*
 * gk/mem.h — page-frame allocation from private RAM. A bump allocator over
 * [end of kernel image, RAM end) excluding reserved regions; pages come back
 * zeroed. Domains allocate at init and keep what they take; exhaustion is a
 * panic with the request size.
 */
#ifndef GK_MEM_H
#define GK_MEM_H

#include <stddef.h>
#include <stdint.h>
#include "moat/boot_info.h"

void mem_init(const struct moat_boot_info *bi);
void *mem_alloc_pages(size_t n);

/* A platform address of the session ABI (moat/session_abi.h: the session
 * table, doorbells, session memory) as a pointer. The platform provides
 * it: hosted, those are identity-mapped guest-physical addresses; bare
 * (bare/dom/dom_rt.c), they sit elsewhere in the domain's space; host
 * tests that compile guest code (e.g. harness/fuzz/fuzz_dd_serve.c)
 * provide their own. */
void *gk_gpa_ptr(uint64_t gpa);

#endif /* GK_MEM_H */
