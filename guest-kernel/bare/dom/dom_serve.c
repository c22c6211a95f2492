/* Serving caps in a bare driver domain (contract in dd.h). Until app
 * domains hold caps in bare mode (sessions with the monitor as broker),
 * a registered BlockDevice is announced to the monitor (SYS_CAP_REGISTER:
 * the console lists it) and, when the domain's arguments ask for it
 * (selftest_kib=N), exercised by a self-test client in this runtime: it
 * writes a pattern through the driver's submit, flushes, reads it back
 * and verifies, with buffers in the domain's DMA windows so the driver
 * points the device at them (the monitor translates every address).
 *
 * Pattern (the host checks it in the disk image): 64-bit little-endian
 * words; word i of block lba is seed ^ lba << 32 ^ i. */
#include "dd.h"
#include "dd_session.h"
#include "dom_serve.h"
#include "gk/platform.h"
#include "gk/sys.h"

#define SELFTEST_CHUNK_MAX (64u << 10)

static uint64_t heap_next, heap_end;
static struct dd_serve_stats st;

void *dd_mem_alloc(uint64_t size)
{
    const struct moat_boot_info *bi = platform_boot_info();
    if (!heap_end) {
        if (bi->n_mem == 0 || bi->mem[0].kind != MOAT_MEM_RAM)
            dd_panic("boot info gives no heap");
        heap_next = bi->mem[0].base;
        heap_end = bi->mem[0].base + bi->mem[0].size;
    }
    uint64_t bytes = (size + 4095) & ~4095ull;
    if (!size || bytes > heap_end - heap_next)
        dd_panic("out of private memory: %lu bytes asked, %lu left", size, heap_end - heap_next);
    void *p = (void *)(uintptr_t)heap_next;
    heap_next += bytes;
    return p;                   /* the monitor hands out zeroed pages */
}

void dd_serve_stats(struct dd_serve_stats *out) { *out = st; }
void serve_drain_start(void) {}
unsigned serve_in_flight(void) { return 0; }
bool dd_serve_corrupt_ring(void) { return false; }

/* ---- the self-test client -------------------------------------------------------- */

enum { ST_IDLE, ST_WRITE, ST_FLUSH, ST_READ, ST_DONE };

static struct selftest {
    const struct dd_blk_ops *ops;
    void *ctx;
    struct moat_blk_geometry geo;
    char cap[DOM_CAP_NAME];
    uint64_t seed, lba0, blocks, next, chunk_blocks;
    struct dd_dma wbuf, rbuf;
    struct dd_blk_req req;
    bool busy, done;
    uint32_t status;
    int phase;
    uint64_t t0;
} t;

static uint64_t word_of(uint64_t lba, uint64_t i) { return t.seed ^ lba << 32 ^ i; }

static void submit(uint16_t op, uint64_t lba, uint32_t blocks, void *buf, uint64_t iova)
{
    t.req = (struct dd_blk_req){ .op = op, .lba = lba, .blocks = blocks, .buf = buf,
                                 .buf_iova = iova };
    t.busy = true;
    t.done = false;
    st.requests++;
    t.ops->submit(t.ctx, &t.req);
}

void dd_blk_complete(struct dd_blk_req *req, uint32_t status)
{
    if (req != &t.req || !t.busy)
        dd_panic("driver bug: completion of a request not in flight");
    t.busy = false;
    t.done = true;
    t.status = status;
    st.completed++;
}

static void fail(const char *what)
{
    dd_log("selftest %s: FAIL: %s (status %u)", t.cap, what, t.status);
    t.phase = ST_DONE;
}

/* Start the next request of the current phase; false when it is over. */
static bool next_chunk(void)
{
    uint64_t left = t.blocks - t.next;
    if (!left)
        return false;
    uint32_t n = (uint32_t)(left < t.chunk_blocks ? left : t.chunk_blocks);
    uint64_t off = t.next * t.geo.block_size;
    uint64_t lba = t.lba0 + t.next;
    t.next += n;
    if (t.phase == ST_WRITE)
        submit(MOAT_BLK_WRITE, lba, n, (uint8_t *)t.wbuf.va + off, t.wbuf.iova + off);
    else
        submit(MOAT_BLK_READ, lba, n, (uint8_t *)t.rbuf.va + off, t.rbuf.iova + off);
    return true;
}

static bool verify(void)
{
    const uint64_t *got = t.rbuf.va;
    uint64_t words = t.geo.block_size / 8;
    for (uint64_t b = 0; b < t.blocks; b++)
        for (uint64_t i = 0; i < words; i++)
            if (got[b * words + i] != word_of(t.lba0 + b, i)) {
                dd_log("selftest %s: block %lu word %lu reads 0x%lx, wrote 0x%lx", t.cap,
                       t.lba0 + b, i, got[b * words + i], word_of(t.lba0 + b, i));
                return false;
            }
    return true;
}

static bool selftest_poll(void *ctx)
{
    (void)ctx;
    if (t.phase == ST_DONE || t.busy)
        return false;
    if (t.done && t.status != MOAT_ST_OK) {
        fail(t.phase == ST_WRITE ? "write" : t.phase == ST_FLUSH ? "flush" : "read");
        return true;
    }
    if ((t.phase == ST_WRITE || t.phase == ST_READ) && next_chunk())
        return true;
    if (t.phase == ST_WRITE) {
        t.phase = ST_FLUSH;
        submit(MOAT_BLK_FLUSH, 0, 0, NULL, 0);
    } else if (t.phase == ST_FLUSH) {
        t.phase = ST_READ;
        t.next = 0;
        next_chunk();
    } else {
        bool ok = verify();
        dd_log("selftest %s: %s: wrote, flushed, read and verified %lu KiB at LBA %lu "
               "(seed 0x%lx, %lu blocks of %u bytes) in %lu ms", t.cap, ok ? "PASS" : "FAIL",
               t.blocks * t.geo.block_size >> 10, t.lba0, t.seed, t.blocks, t.geo.block_size,
               (dd_now_ns() - t.t0) / 1000000u);
        t.phase = ST_DONE;
    }
    return true;
}

static void selftest_start(const char *args)
{
    uint64_t kib = dd_arg_u64(args, "selftest_kib", 0);
    if (!kib)
        return;
    t.seed = dd_arg_u64(args, "selftest_seed", 0x6d6f6174u);
    t.lba0 = dd_arg_u64(args, "selftest_lba", 2048);
    t.blocks = (kib << 10) / t.geo.block_size;
    uint64_t chunk = SELFTEST_CHUNK_MAX / t.geo.block_size;
    t.chunk_blocks = chunk < t.geo.max_blocks ? chunk : t.geo.max_blocks;
    if (!t.blocks || !t.chunk_blocks || t.lba0 + t.blocks > t.geo.blocks)
        dd_panic("selftest: %lu KiB at LBA %lu does not fit %s", kib, t.lba0, t.cap);
    if (!dd_dma_alloc(t.blocks * t.geo.block_size, 0, &t.wbuf) ||
        !dd_dma_alloc(t.blocks * t.geo.block_size, 0, &t.rbuf))
        dd_panic("selftest: no room in the DMA windows for 2 x %lu KiB", kib);
    uint64_t *w = t.wbuf.va, words = t.geo.block_size / 8;
    for (uint64_t b = 0; b < t.blocks; b++)
        for (uint64_t i = 0; i < words; i++)
            w[b * words + i] = word_of(t.lba0 + b, i);
    t.phase = ST_WRITE;
    t.t0 = dd_now_ns();
    if (!dd_poll_add(selftest_poll, NULL))
        dd_panic("selftest: no free poller");
}

bool dom_cap_register(struct moat_cap_register *reg, const char *name, char full[DOM_CAP_NAME])
{
    size_t len = strlen(name);
    memcpy(reg->name, name, len < sizeof reg->name - 1 ? len : sizeof reg->name - 1);
    int64_t rc = sys_cap_register(reg);
    if (rc < 0) {
        dd_log("the monitor refused cap '%s' (%ld)", name, rc);
        return false;
    }
    const char *dom = platform_boot_info()->name;
    len = strnlen(dom, MOAT_NAME_MAX);
    memcpy(full, dom, len);
    full[len] = '.';
    memcpy(full + len + 1, reg->name, strlen(reg->name) + 1);
    return true;
}

bool dd_blk_serve(const char *name, const struct moat_blk_geometry *geo,
                  const struct dd_blk_ops *ops, void *ctx)
{
    if (!ops || !ops->submit)
        dd_panic("dd_blk_serve: a BlockDevice needs a submit function");
    if (t.ops)
        dd_panic("bare domains serve one BlockDevice for now");
    struct moat_cap_register reg = { .kind = MOAT_CAP_BLOCK, .blk = *geo };
    if (!dom_cap_register(&reg, name, t.cap))
        return false;
    t.ops = ops;
    t.ctx = ctx;
    t.geo = *geo;
    selftest_start(platform_boot_info()->cmdline);
    return true;
}

/* Hostile-server hooks of the hosted test suites: nothing to corrupt here. */
void dd_blk_complete_raw(struct dd_blk_req *req, uint64_t tag, uint32_t status, uint32_t blocks)
{
    (void)tag;
    (void)blocks;
    dd_blk_complete(req, status);
}
void dd_blk_corrupt_cq(struct dd_blk_req *req, uint32_t bogus_prod)
{
    (void)req;
    (void)bogus_prod;
}
uint64_t dd_blk_tag(const struct dd_blk_req *req)
{
    (void)req;
    return 0;
}
