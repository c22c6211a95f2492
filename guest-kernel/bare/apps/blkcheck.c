/* blkcheck — an app domain of the bare monitor that checks a BlockDevice
 * another domain serves, through a session (session_client.h): rounds of
 * write a pattern, flush, read it back and verify, `depth` requests in
 * flight. Its words (after the monitor's domain=, mem=, ...):
 *   cap=DOMAIN.CAP   the BlockDevice (required)
 *   kib=N lba=L      how much, where (default 192 KiB at LBA 2048)
 *   rounds=R         (default 1) seed=S (default 0x6d6f6174) depth=D (default 4)
 * Pattern: 64-bit words; word i of block lba in round r is
 * seed_r ^ lba << 32 ^ i, with seed_r = seed ^ (R - 1 - r) * 0x9e3779b97f4a7c15:
 * the last round writes seed's own pattern, which the host can look for
 * in the disk image. Every round verifies only what its flush completed
 * for, so a server that restarts mid-round (the client resubmits) must
 * still hand back every flushed write.
 * Console: "blkcheck NAME: round r of R verified", then "PASS: ..." and an
 * orderly exit (code 0), or "FAIL: ..." and exit code 1. */
#include "session_client.h"
#include "dd.h"
#include "gk/platform.h"
#include "gk/sys.h"

#define CHUNK_MAX (64u << 10)
#define OPEN_TIMEOUT_NS (30ull * 1000000000ull)

enum phase { PH_WRITE, PH_FLUSH, PH_READ, PH_DONE };

static struct check {
    struct sclient c;
    char cap[64];
    const char *name;
    uint64_t seed, lba0, blocks, chunk_blocks, rounds, round, depth;
    uint64_t next, done_blocks, t0;
    uint32_t bs;
    enum phase phase;
    bool flush_sent;
    uint64_t req_lba[SC_INFLIGHT];
    uint32_t req_blocks[SC_INFLIGHT];
} k;

static uint64_t round_seed(uint64_t r)
{
    return k.seed ^ (k.rounds - 1 - r) * 0x9e3779b97f4a7c15ull;
}

static uint64_t *wbuf(void) { return (uint64_t *)(uintptr_t)k.c.data; }
static uint64_t *rbuf(void) { return (uint64_t *)(uintptr_t)(k.c.data + k.blocks * k.bs); }

static _Noreturn void fail(const char *why, uint64_t lba, uint64_t detail)
{
    dd_log("blkcheck %s: FAIL: round %lu: %s (LBA %lu, %lu)", k.name, k.round + 1, why, lba,
           detail);
    sys_exit(1);
}

static void fill(void)
{
    uint64_t words = k.bs / 8, s = round_seed(k.round);
    for (uint64_t b = 0; b < k.blocks; b++)
        for (uint64_t i = 0; i < words; i++)
            wbuf()[b * words + i] = s ^ (k.lba0 + b) << 32 ^ i;
}

static void verify(void)
{
    uint64_t words = k.bs / 8;
    for (uint64_t w = 0; w < k.blocks * words; w++)
        if (rbuf()[w] != wbuf()[w])
            fail("a block reads back other data than was written and flushed", k.lba0 + w / words,
                 w % words);
}

static void done(void *ctx, unsigned slot, uint32_t status, uint32_t len)
{
    (void)ctx;
    (void)len;
    if (status != MOAT_ST_OK)
        fail("a request failed", k.req_lba[slot], status);
    if (k.phase == PH_FLUSH)
        k.phase = PH_READ, k.next = 0, k.done_blocks = 0;
    else
        k.done_blocks += k.req_blocks[slot];
}

/* A block request; every one is published again after a server restart. */
static int submit(uint16_t op, uint64_t lba, uint32_t blocks, uint64_t buf_off)
{
    struct moat_sqe e = { .op = op, .blocks = blocks, .lba = lba, .buf_off = buf_off };
    return sc_submit(&k.c, &e, true);
}

/* Keep `depth` requests of the current phase in flight. */
static bool check_poll(void *ctx)
{
    (void)ctx;
    bool work = false;
    if (k.phase == PH_WRITE && k.done_blocks == k.blocks) {
        k.phase = PH_FLUSH;
        k.flush_sent = false;
    }
    if (k.phase == PH_FLUSH && !k.flush_sent) {
        k.flush_sent = submit(MOAT_BLK_FLUSH, 0, 0, 0) >= 0;
        return true;
    }
    if (k.phase == PH_READ && k.done_blocks == k.blocks) {
        verify();
        dd_log("blkcheck %s: round %lu of %lu verified", k.name, k.round + 1, k.rounds);
        if (++k.round == k.rounds) {
            dd_log("blkcheck %s: PASS: %lu round%s of %lu KiB written, flushed, read and verified "
                   "at LBA %lu through %s (seed 0x%lx, %lu blocks of %u bytes) in %lu ms; %lu "
                   "requests, %lu published again after %lu server restart%s and %lu broken "
                   "session%s", k.name, k.rounds, k.rounds == 1 ? "" : "s",
                   k.blocks * k.bs >> 10, k.lba0, k.cap, k.seed, k.blocks, k.bs,
                   (dd_now_ns() - k.t0) / 1000000u, k.c.submitted, k.c.resubmitted,
                   k.c.fresh_rings, k.c.fresh_rings == 1 ? "" : "s", k.c.reopened,
                   k.c.reopened == 1 ? "" : "s");
            sys_exit(0);
        }
        fill();
        k.phase = PH_WRITE, k.next = 0, k.done_blocks = 0;
    }
    while ((k.phase == PH_WRITE || k.phase == PH_READ) && k.next < k.blocks &&
           sc_in_flight(&k.c) < k.depth) {
        uint64_t left = k.blocks - k.next;
        uint32_t n = (uint32_t)(left < k.chunk_blocks ? left : k.chunk_blocks);
        uint64_t off = k.next * k.bs + (k.phase == PH_READ ? k.blocks * k.bs : 0);
        int s = submit(k.phase == PH_WRITE ? MOAT_BLK_WRITE : MOAT_BLK_READ, k.lba0 + k.next, n,
                       off);
        if (s < 0)
            break;
        k.req_lba[s] = k.lba0 + k.next;
        k.req_blocks[s] = n;
        k.next += n;
        work = true;
    }
    return work;
}

void domain_main(const char *args)
{
    k.name = platform_boot_info()->name;
    if (!dd_arg(args, "cap", k.cap, sizeof k.cap))
        dd_panic("blkcheck: give the BlockDevice to check: cap=DOMAIN.CAP");
    uint64_t kib = dd_arg_u64(args, "kib", 192);
    k.lba0 = dd_arg_u64(args, "lba", 2048);
    k.seed = dd_arg_u64(args, "seed", 0x6d6f6174u);
    k.rounds = dd_arg_u32(args, "rounds", 1, 1, 1000000);
    k.depth = dd_arg_u32(args, "depth", 4, 1, SC_INFLIGHT);
    if (!sc_open(&k.c, k.cap, MOAT_CAP_BLOCK, OPEN_TIMEOUT_NS, done, NULL))
        sys_exit(1);
    k.bs = k.c.info.blk.block_size;
    k.blocks = (kib << 10) / k.bs;
    uint64_t chunk = CHUNK_MAX / k.bs;
    k.chunk_blocks = chunk < k.c.info.blk.max_blocks ? chunk : k.c.info.blk.max_blocks;
    if (!k.blocks || !k.chunk_blocks || k.lba0 + k.blocks > k.c.info.blk.blocks ||
        2 * k.blocks * k.bs > k.c.info.data_size)
        dd_panic("blkcheck: %lu KiB at LBA %lu does not fit %s or twice in the session's %lu KiB",
                 kib, k.lba0, k.cap, k.c.info.data_size >> 10);
    fill();
    k.t0 = dd_now_ns();
    if (!dd_poll_add(check_poll, NULL))
        dd_panic("blkcheck: no free poller");
    dd_ready();
    dd_run();
}
