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

/* Guest-physical address gpa as a pointer: the platform's pages and the
 * session windows are identity-mapped. Host tests that compile guest code
 * (GK_HOST_TEST, e.g. harness/fuzz/fuzz_dd_serve.c) provide the mapping. */
#ifdef GK_HOST_TEST
void *gk_gpa_ptr(uint64_t gpa);
#else
static inline void *gk_gpa_ptr(uint64_t gpa) { return (void *)(uintptr_t)gpa; }
#endif

#endif /* GK_MEM_H */
