/*
 * fuzz_nvme_prp — the NVMe PRP walker (devmodel/nvme_prp.c) on hostile
 * PRP1/PRP2, lengths, page sizes and PRP list pages.
 *
 * Input: prp1, prp2 (u64), len (u32, up to 8 MiB), page shift (u8), then
 * the bytes PRP list reads return, in order. Checks beyond the sanitizers:
 * the segments found never exceed the array, each lies inside 2^64 and
 * together they never cover more than len bytes; an OK walk covers
 * exactly len.
 */
#include <stdint.h>
#include "fuzz_input.h"
#include "nvme_prp.h"

#define SEGS_MAX 64u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool read_list(void *ctx, uint64_t iova, uint64_t *out, uint32_t n)
{
    struct fz *f = ctx;
    (void)iova;
    if (n == 0 || fz_left(f) == 0)
        return false;           /* an unreadable list page */
    fz_bytes(f, out, (size_t)n * 8u);
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f = fz_init(data, size);
    struct nvme_prp_req r = {
        .prp1 = fz_u64(&f),
        .prp2 = fz_u64(&f),
        .len = fz_u32(&f) % (8u << 20),
        .page = 1u << (10u + fz_u8(&f) % 8u),   /* 1 KiB (invalid) .. 128 KiB */
    };
    struct nvme_prp_seg segs[SEGS_MAX];
    unsigned n = 0;
    enum nvme_prp_result res = nvme_prp_walk(&r, read_list, &f, segs, SEGS_MAX, &n);
    FZ_CHECK(n <= SEGS_MAX);
    uint64_t total = 0;
    for (unsigned i = 0; i < n; i++) {
        FZ_CHECK(segs[i].len > 0 && segs[i].iova + segs[i].len >= segs[i].iova);
        total += segs[i].len;
    }
    FZ_CHECK(total <= r.len);
    FZ_CHECK(res != NVME_PRP_OK || total == r.len);
    (void)nvme_prp_result_name(res);
    return 0;
}
