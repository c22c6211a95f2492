/*
 * nvme_prp.h — the NVMe PRP walker: turns a command's PRP1/PRP2 and its
 * transfer length into the list of guest address ranges (IOVAs) the data
 * occupies. Pure logic: PRP list pages are read through a callback (the
 * controller maps them through the broker), nothing else is touched.
 *
 * Rules (NVMe 1.4 §4.3, Figures 108-110), memory page size P:
 *  - PRP1 is the first data page and may carry an offset, which must be
 *    dword aligned; it covers min(len, P - offset) bytes;
 *  - if the rest fits in one page, PRP2 is that page (offset 0);
 *  - otherwise PRP2 points to a PRP list (qword aligned, may carry an
 *    offset); each list runs to the end of its page; when more entries
 *    remain than the page holds, its last entry points to the next list
 *    page (offset 0) instead of data;
 *  - every data entry after PRP1 has offset 0.
 *
 * Error policy: the walk stops at the first problem and says which kind,
 * so the caller can answer with the matching status; *nseg then holds the
 * segments found so far (to be ignored).
 */
#ifndef MOAT_NVME_PRP_H
#define MOAT_NVME_PRP_H

#include <stdbool.h>
#include <stdint.h>

/* A run of guest memory: adjacent pages are merged into one segment. */
struct nvme_prp_seg {
    uint64_t iova;
    uint64_t len;
};

enum nvme_prp_result {
    NVME_PRP_OK,
    NVME_PRP_BAD_OFFSET,    /* PRP1 not dword aligned, list pointer not qword
                             * aligned, data entry or chained list with an offset */
    NVME_PRP_LIST_REFUSED,  /* the callback could not read a list page */
    NVME_PRP_TOO_MANY,      /* more segments than the caller's array holds */
    NVME_PRP_OVERFLOW,      /* an address + length wraps 64 bits */
    NVME_PRP_BAD_ARGS,      /* page size not a power of two >= 4 KiB */
};

/* Read n (1 <= n <= page/8) little-endian 8-byte entries starting at iova
 * (never crossing a page) into out. False when the memory is not readable. */
typedef bool (*nvme_prp_read_fn)(void *ctx, uint64_t iova, uint64_t *out, uint32_t n);

struct nvme_prp_req {
    uint64_t prp1, prp2;
    uint64_t len;           /* bytes to transfer; 0 gives no segment */
    uint32_t page;          /* memory page size (CC.MPS), a power of two */
    /* Optional (may be NULL): on NVME_PRP_OVERFLOW, the range that wraps,
     * so the caller can take it to the broker (whose accounting audits
     * every refused address) instead of refusing it silently. */
    struct nvme_prp_seg *wrapped;
};

/* Walk r into segs[0..max), merging contiguous pages; *nseg = count.
 * read may be NULL when the transfer needs no PRP list. */
enum nvme_prp_result nvme_prp_walk(const struct nvme_prp_req *r, nvme_prp_read_fn read,
                                   void *ctx, struct nvme_prp_seg *segs, unsigned max,
                                   unsigned *nseg);

/* Short name of a result, for logs and test messages. */
const char *nvme_prp_result_name(enum nvme_prp_result r);

#endif /* MOAT_NVME_PRP_H */
