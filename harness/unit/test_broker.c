/* DMA broker: the DESIGN §5 rules, one behaviour per test. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include "broker.h"
#include "moat/layout.h"

#define PAGE 4096ull
#define W0 MOAT_GPA_DMA_BASE
#define QUOTA (1ull << 20)

static struct broker b;
static char err[256];
static int scrub_calls;
static bool scrub_all_zero;
/* Optional probe run from the scrub observer, i.e. while a window is
 * being scrubbed. */
static void (*during_scrub)(uint32_t window);

static void on_scrubbed(void *ctx, uint32_t window, const uint8_t *host, uint64_t len)
{
    (void)ctx;
    scrub_calls++;
    if (during_scrub)
        during_scrub(window);
    scrub_all_zero = true;
    for (uint64_t i = 0; i < len; i++)
        if (host[i]) {
            scrub_all_zero = false;
            break;
        }
}

static void setup(void)
{
    static const struct broker_mapper m = { .scrubbed = on_scrubbed };
    scrub_calls = 0;
    during_scrub = NULL;
    broker_init(&b, QUOTA, &m);
}
static void teardown(void) { broker_fini(&b); }
TestSuite(broker, .init = setup, .fini = teardown);

static struct dma_handle grant(uint32_t dom, uint64_t iova, uint64_t len, uint32_t dirs)
{
    struct dma_handle h;
    cr_assert(broker_grant(&b, dom, iova, len, dirs, &h, err, sizeof err), "grant: %s", err);
    return h;
}

static enum broker_refusal last_refusal(void)
{
    struct broker_audit a;
    cr_assert_eq(broker_audit_read(&b, broker_audit_seq(&b) - 1, &a, 1), 1, "no audit record");
    return a.reason;
}

Test(broker, grant_gives_zeroed_memory_and_accounts)
{
    grant(1, W0, 4 * PAGE, DMA_BIDIR);
    struct broker_account a = broker_account(&b, 1);
    cr_assert_eq(a.bytes, 4 * PAGE);
    cr_assert_eq(a.windows, 1);
    struct dma_mapping m;
    uint8_t *p = broker_dma_map(&b, 1, "t", W0, 4 * PAGE, DMA_TO_DEVICE, &m);
    cr_assert_not_null(p);
    for (uint64_t i = 0; i < 4 * PAGE; i++)
        cr_assert_eq(p[i], 0, "fresh window byte %lu not zero", (unsigned long)i);
    broker_dma_unmap(&b, &m);
    cr_assert_eq(broker_account(&b, 2).windows, 0, "another domain is charged nothing");
}

Test(broker, maps_see_the_same_memory)
{
    grant(1, W0, 2 * PAGE, DMA_BIDIR);
    struct dma_mapping m1, m2;
    uint8_t *w = broker_dma_map(&b, 1, "t", W0 + 100, 8, DMA_FROM_DEVICE, &m1);
    memcpy(w, "deadbeef", 8);
    uint8_t *r = broker_dma_map(&b, 1, "t", W0 + 100, 8, DMA_TO_DEVICE, &m2);
    cr_assert_not_null(r);
    cr_assert_eq(memcmp(r, "deadbeef", 8), 0);
    broker_dma_unmap(&b, &m1);
    broker_dma_unmap(&b, &m2);
}

Test(broker, bad_grants_are_refused)
{
    struct dma_handle h;
    cr_assert_not(broker_grant(&b, 1, W0 + 1, PAGE, DMA_BIDIR, &h, err, sizeof err), "misaligned");
    cr_assert_not(broker_grant(&b, 1, W0, 100, DMA_BIDIR, &h, err, sizeof err), "partial page");
    cr_assert_not(broker_grant(&b, 1, W0, 0, DMA_BIDIR, &h, err, sizeof err), "empty");
    cr_assert_not(broker_grant(&b, 1, 0x100000, PAGE, DMA_BIDIR, &h, err, sizeof err),
                  "private RAM is never a DMA window");
    cr_assert(strstr(err, "DMA range"), "%s", err);
    cr_assert_not(broker_grant(&b, 1, UINT64_MAX - PAGE + 1, 2 * PAGE, DMA_BIDIR, &h, err,
                               sizeof err), "wrapping");
    cr_assert_not(broker_grant(&b, 1, W0, PAGE, 0, &h, err, sizeof err), "no direction");
    cr_assert_not(broker_grant(&b, BROKER_DOMAINS_MAX, W0, PAGE, DMA_BIDIR, &h, err, sizeof err));
    cr_assert_not(broker_grant(&b, 1, W0, QUOTA + PAGE, DMA_BIDIR, &h, err, sizeof err));
    cr_assert(strstr(err, "quota"), "%s", err);
    cr_assert_eq(broker_account(&b, 1).windows, 0, "refused grants charged nothing");
}

Test(broker, overlapping_grant_refused_within_a_domain_only)
{
    grant(1, W0, 4 * PAGE, DMA_BIDIR);
    struct dma_handle h;
    cr_assert_not(broker_grant(&b, 1, W0 + 3 * PAGE, 2 * PAGE, DMA_BIDIR, &h, err, sizeof err));
    cr_assert(strstr(err, "overlaps"), "%s", err);
    cr_assert_not(broker_grant(&b, 1, W0 + PAGE, PAGE, DMA_BIDIR, &h, err, sizeof err),
                  "a window inside another accepted");
    grant(1, W0 + 4 * PAGE, PAGE, DMA_BIDIR);   /* adjacent is fine */
    grant(2, W0, 4 * PAGE, DMA_BIDIR);          /* each domain has its own IOVA space */
}

Test(broker, out_of_window_partial_overflow_zero_are_refused_and_audited)
{
    grant(1, W0, 2 * PAGE, DMA_BIDIR);
    struct dma_mapping m;
    uint64_t seq0 = b.audit_seq;
    cr_assert_null(broker_dma_map(&b, 1, "nvme", W0 + 2 * PAGE, 1, DMA_TO_DEVICE, &m));
    cr_assert_eq(last_refusal(), BR_OUT_OF_WINDOW);
    cr_assert_null(broker_dma_map(&b, 1, "nvme", 0x100000, 64, DMA_TO_DEVICE, &m),
                   "private RAM must not be reachable");
    cr_assert_eq(last_refusal(), BR_OUT_OF_WINDOW);
    cr_assert_null(broker_dma_map(&b, 1, "nvme", W0 + 2 * PAGE - 8, 16, DMA_TO_DEVICE, &m));
    cr_assert_eq(last_refusal(), BR_PARTIAL);
    cr_assert_null(broker_dma_map(&b, 1, "nvme", W0, UINT64_MAX, DMA_TO_DEVICE, &m));
    cr_assert_eq(last_refusal(), BR_OVERFLOW);
    cr_assert_null(broker_dma_map(&b, 1, "nvme", UINT64_MAX - 3, 8, DMA_TO_DEVICE, &m));
    cr_assert_eq(last_refusal(), BR_OVERFLOW);
    cr_assert_null(broker_dma_map(&b, 1, "nvme", W0, 0, DMA_TO_DEVICE, &m));
    cr_assert_eq(last_refusal(), BR_ZERO_LENGTH);
    cr_assert_null(m.host, "a refusal leaves no mapping");

    struct broker_audit a[8];
    size_t n = broker_audit_read(&b, seq0, a, 8);
    cr_assert_eq(n, 6);
    cr_assert_eq(a[2].domain, 1);
    cr_assert_str_eq(a[2].device, "nvme");
    cr_assert_eq(a[2].addr, W0 + 2 * PAGE - 8);
    cr_assert_eq(a[2].len, 16);
    cr_assert_eq(broker_account(&b, 1).refusals, 6);
}

Test(broker, another_domains_window_is_out_of_reach)
{
    grant(1, W0, PAGE, DMA_BIDIR);
    struct dma_mapping m;
    cr_assert_null(broker_dma_map(&b, 2, "virtio", W0, 64, DMA_FROM_DEVICE, &m));
    cr_assert_eq(last_refusal(), BR_OUT_OF_WINDOW);
    cr_assert_eq(broker_account(&b, 2).refusals, 1);
    cr_assert_eq(broker_account(&b, 1).refusals, 0);
}

Test(broker, direction_is_enforced)
{
    grant(1, W0, PAGE, DMA_TO_DEVICE);
    struct dma_mapping m;
    cr_assert_null(broker_dma_map(&b, 1, "t", W0, 64, DMA_FROM_DEVICE, &m),
                   "a device must not write a read-only window");
    cr_assert_eq(last_refusal(), BR_DIRECTION);
    cr_assert_not_null(broker_dma_map(&b, 1, "t", W0, 64, DMA_TO_DEVICE, &m));
    broker_dma_unmap(&b, &m);
}

Test(broker, revoke_scrubs_and_makes_everything_stale)
{
    struct dma_handle h = grant(1, W0, 2 * PAGE, DMA_BIDIR);
    struct dma_mapping m;
    uint8_t *p = broker_dma_map(&b, 1, "t", W0, 2 * PAGE, DMA_FROM_DEVICE, &m);
    memset(p, 0x5A, 2 * PAGE);
    struct dma_mapping old = m;
    broker_dma_unmap(&b, &m);
    cr_assert(broker_revoke(&b, h, err, sizeof err), "%s", err);
    cr_assert_eq(scrub_calls, 1);
    cr_assert(scrub_all_zero, "window was not zeroed before it was freed");
    cr_assert_eq(broker_account(&b, 1).bytes, 0);
    cr_assert_eq(broker_account(&b, 1).windows, 0);
    cr_assert_not(broker_revoke(&b, h, err, sizeof err), "double revoke accepted");
    cr_assert(strstr(err, "stale"), "%s", err);
    cr_assert_null(broker_dma_map(&b, 1, "t", W0, 8, DMA_TO_DEVICE, &m));
    old.host = (void *)1;
    cr_assert_not(broker_mapping_valid(&b, &old), "a mapping of the old generation is valid");

    /* The slot is reused with a new generation; the old handle stays dead. */
    struct dma_handle h2 = grant(1, W0, PAGE, DMA_BIDIR);
    cr_assert_eq(h2.window, h.window);
    cr_assert_neq(h2.generation, h.generation);
    cr_assert_not(broker_revoke(&b, h, err, sizeof err), "old handle revoked the new window");
    p = broker_dma_map(&b, 1, "t", W0, PAGE, DMA_TO_DEVICE, &m);
    cr_assert_eq(p[0], 0, "reused window leaked old contents");
    broker_dma_unmap(&b, &m);
}

struct revoker { struct dma_handle h; volatile bool done; };

static void *revoke_thread(void *arg)
{
    struct revoker *r = arg;
    char e[128];
    broker_revoke(&b, r->h, e, sizeof e);
    r->done = true;
    return NULL;
}

/* Revoke r->h on another thread; return once it has hidden the window and
 * waits for in-flight device I/O. */
static pthread_t start_revoke(struct revoker *r)
{
    pthread_t t;
    pthread_create(&t, NULL, revoke_thread, r);
    for (int i = 0; i < 10000000; i++) {   /* bounded */
        pthread_mutex_lock(&b.lock);
        bool quiescing = b.win[r->h.window].state == WIN_QUIESCING;
        pthread_mutex_unlock(&b.lock);
        if (quiescing)
            break;
        sched_yield();
    }
    cr_assert_eq(b.win[r->h.window].state, WIN_QUIESCING, "the revoke never started");
    return t;
}

Test(broker, revoke_waits_for_in_flight_device_io)
{
    struct revoker r = { grant(1, W0, PAGE, DMA_BIDIR), false };
    struct dma_mapping m;
    uint8_t *p = broker_dma_map(&b, 1, "t", W0, PAGE, DMA_FROM_DEVICE, &m);
    cr_assert_not_null(p);
    pthread_t t = start_revoke(&r);
    struct dma_mapping m2;
    cr_assert_null(broker_dma_map(&b, 1, "t", W0, 8, DMA_TO_DEVICE, &m2),
                   "a window being revoked accepted a new map");
    cr_assert_eq(last_refusal(), BR_NOT_LIVE);
    cr_assert_not(r.done, "revoke finished while device I/O was in flight");
    cr_assert_eq(scrub_calls, 0, "scrubbed while device I/O was in flight");
    memset(p, 0x77, PAGE);          /* the in-flight I/O completes... */
    broker_dma_unmap(&b, &m);       /* ...and releases the memory */
    pthread_join(t, NULL);
    cr_assert(r.done);
    cr_assert_eq(scrub_calls, 1);
    cr_assert(scrub_all_zero, "in-flight data survived the scrub");
}

Test(broker, revoke_domain_frees_only_that_domain)
{
    grant(1, W0, PAGE, DMA_BIDIR);
    grant(1, W0 + 16 * PAGE, 2 * PAGE, DMA_BIDIR);
    grant(2, W0, PAGE, DMA_BIDIR);
    cr_assert_eq(broker_revoke_domain(&b, 1), 2);
    cr_assert_eq(broker_account(&b, 1).windows, 0);
    cr_assert_eq(broker_account(&b, 2).windows, 1);
    cr_assert_eq(scrub_calls, 2);
}

Test(broker, audit_ring_keeps_each_domains_newest)
{
    struct dma_mapping m;
    for (int i = 0; i < BROKER_AUDIT_PER_DOMAIN + 10; i++)
        cr_assert_null(broker_dma_map(&b, 3, "t", W0 + (uint64_t)i, 1, DMA_TO_DEVICE, &m));
    static struct broker_audit a[BROKER_AUDIT_RING];
    size_t n = broker_audit_read(&b, 0, a, BROKER_AUDIT_RING);
    cr_assert_eq(n, BROKER_AUDIT_PER_DOMAIN, "a domain keeps its %u newest records, got %zu",
                 BROKER_AUDIT_PER_DOMAIN, n);
    cr_assert_eq(a[0].seq, 10, "oldest kept record");
    cr_assert_eq(a[n - 1].addr, W0 + BROKER_AUDIT_PER_DOMAIN + 9);
    cr_assert_eq(broker_account(&b, 3).refusals, BROKER_AUDIT_PER_DOMAIN + 10, "all counted");
}

Test(broker, one_domains_refusal_flood_hides_no_other_domains_records)
{
    struct dma_mapping m;
    cr_assert_null(broker_dma_map(&b, 4, "quiet", W0, 1, DMA_TO_DEVICE, &m));
    for (int i = 0; i < 10 * BROKER_AUDIT_PER_DOMAIN; i++)
        cr_assert_null(broker_dma_map(&b, 5, "flood", W0 + (uint64_t)i, 1, DMA_TO_DEVICE, &m));
    static struct broker_audit a[BROKER_AUDIT_RING];
    size_t n = broker_audit_read(&b, 0, a, BROKER_AUDIT_RING);
    cr_assert_eq(n, BROKER_AUDIT_PER_DOMAIN + 1, "got %zu records", n);
    cr_assert_eq(a[0].domain, 4, "the quiet domain's one refusal is still there, oldest first");
    cr_assert_str_eq(a[0].device, "quiet");
    cr_assert_eq(a[1].domain, 5);
}

/* Run from inside a scrub: another domain's map, and this domain's other
 * window, must go through; the window being scrubbed must be refused. */
static struct { bool other_ok, sibling_ok; enum broker_refusal scrubbing; } probe;

static void map_during_scrub(uint32_t window)
{
    (void)window;
    struct dma_mapping m;
    probe.other_ok = broker_dma_map(&b, 2, "other", W0 + 64 * PAGE, PAGE, DMA_TO_DEVICE, &m);
    broker_dma_unmap(&b, &m);
    probe.sibling_ok = broker_dma_map(&b, 1, "sib", W0 + 32 * PAGE, PAGE, DMA_TO_DEVICE, &m);
    broker_dma_unmap(&b, &m);
    cr_assert_null(broker_dma_map(&b, 1, "scrubbing", W0, PAGE, DMA_TO_DEVICE, &m));
    probe.scrubbing = m.refusal;
}

Test(broker, scrub_holds_no_lock_and_hides_the_window)
{
    struct dma_handle h = grant(1, W0, 4 * PAGE, DMA_BIDIR);
    grant(1, W0 + 32 * PAGE, PAGE, DMA_BIDIR);
    grant(2, W0 + 64 * PAGE, PAGE, DMA_BIDIR);
    during_scrub = map_during_scrub;
    cr_assert(broker_revoke(&b, h, err, sizeof err), "revoke: %s", err);
    cr_assert_eq(scrub_calls, 1);
    cr_assert(probe.other_ok, "another domain's map waited for (or failed during) a scrub");
    cr_assert(probe.sibling_ok, "the same domain's other window was blocked by the scrub");
    cr_assert_eq(probe.scrubbing, BR_NOT_LIVE, "a window being scrubbed must be invisible, got %s",
                 broker_refusal_name(probe.scrubbing));
}

Test(broker, grant_any_picks_unique_guarded_iovas)
{
    struct dma_handle h[3];
    uint64_t iova[3];
    cr_assert(broker_grant_any(&b, 1, 4 * PAGE, 2ull << 20, DMA_BIDIR, &h[0], &iova[0], err,
                               sizeof err), "%s", err);
    cr_assert(broker_grant_any(&b, 2, 4 * PAGE, 2ull << 20, DMA_BIDIR, &h[1], &iova[1], err,
                               sizeof err), "%s", err);
    cr_assert(broker_grant_any(&b, 1, 8 * PAGE, 2ull << 20, DMA_BIDIR, &h[2], &iova[2], err,
                               sizeof err), "%s", err);
    cr_assert_eq(iova[0], W0, "first window at the DMA base");
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(iova[i] % (2ull << 20), 0, "IOVA 0x%llx not aligned",
                     (unsigned long long)iova[i]);
        for (int j = 0; j < i; j++)
            cr_assert_geq(iova[i] > iova[j] ? iova[i] - iova[j] : iova[j] - iova[i],
                          4 * PAGE + BROKER_GUARD, "windows %d and %d closer than the guard", j, i);
    }
    struct dma_mapping m;
    cr_assert_null(broker_dma_map(&b, 1, "t", iova[1], 8, DMA_TO_DEVICE, &m),
                   "domain 1 reached domain 2's window");
    cr_assert_eq(last_refusal(), BR_OUT_OF_WINDOW);
    cr_assert_not(broker_grant_any(&b, 1, 0, 2ull << 20, DMA_BIDIR, &h[0], &iova[0], err,
                                   sizeof err), "zero-length window granted");
    cr_assert_not(broker_grant_any(&b, 1, PAGE, 3 * PAGE, DMA_BIDIR, &h[0], &iova[0], err,
                                   sizeof err), "non-power-of-two alignment accepted");
}

Test(broker, revoked_window_is_named_in_the_refusal)
{
    struct dma_handle h = grant(1, W0, 2 * PAGE, DMA_BIDIR);
    cr_assert(broker_revoke(&b, h, err, sizeof err), "%s", err);
    struct dma_mapping m;
    cr_assert_null(broker_dma_map(&b, 1, "t", W0 + PAGE, 8, DMA_FROM_DEVICE, &m));
    cr_assert_eq(m.refusal, BR_REVOKED, "reason %s", broker_refusal_name(m.refusal));
    cr_assert_eq(last_refusal(), BR_REVOKED);
    cr_assert_null(broker_dma_map(&b, 2, "t", W0 + PAGE, 8, DMA_FROM_DEVICE, &m));
    cr_assert_eq(m.refusal, BR_OUT_OF_WINDOW, "another domain learns nothing about it");
}

/* ---- adopted memory (cap-session data areas) ----------------------------------------- */

#define S0 (MOAT_GPA_SESSION_BASE + 2 * PAGE)

static uint8_t *owned_pages(size_t n)
{
    uint8_t *p = aligned_alloc(PAGE, n * PAGE);
    cr_assert_not_null(p);
    memset(p, 0x5A, n * PAGE);
    return p;
}

static struct dma_handle adopt(uint32_t dom, uint64_t iova, uint8_t *host, uint64_t len,
                               uint32_t dirs)
{
    struct dma_handle h;
    cr_assert(broker_adopt(&b, dom, iova, len, host, dirs, &h, err, sizeof err), "adopt: %s",
              err);
    return h;
}

Test(broker, adopted_memory_is_reached_in_place_and_not_charged)
{
    uint8_t *mem = owned_pages(2);
    struct dma_handle h = adopt(1, S0, mem, 2 * PAGE, DMA_BIDIR);
    struct dma_mapping m;
    uint8_t *p = broker_dma_map(&b, 1, "t", S0 + PAGE + 8, 16, DMA_FROM_DEVICE, &m);
    cr_assert_eq(p, mem + PAGE + 8, "the device must reach the owner's bytes, not a copy");
    broker_dma_unmap(&b, &m);
    cr_assert_eq(b.win[h.window].maps, 1, "one access counted on the window");
    cr_assert_eq(broker_account(&b, 1).bytes, 0, "adopted memory counted against the quota");
    cr_assert_null(broker_dma_map(&b, 2, "t", S0, 16, DMA_FROM_DEVICE, &m),
                   "another domain reached an adopted window");
    cr_assert_eq(last_refusal(), BR_OUT_OF_WINDOW);
    cr_assert(broker_revoke(&b, h, err, sizeof err), "%s", err);
    free(mem);
}

Test(broker, adopted_memory_allows_only_its_directions)
{
    uint8_t *mem = owned_pages(1);
    adopt(1, S0, mem, PAGE, DMA_FROM_DEVICE);       /* a read-only session */
    struct dma_mapping m;
    cr_assert_null(broker_dma_map(&b, 1, "t", S0, 8, DMA_TO_DEVICE, &m),
                   "the device read memory it may only write");
    cr_assert_eq(last_refusal(), BR_DIRECTION);
    cr_assert_not_null(broker_dma_map(&b, 1, "t", S0, 8, DMA_FROM_DEVICE, &m));
    broker_dma_unmap(&b, &m);
    broker_revoke_domain(&b, 1);
    free(mem);
}

Test(broker, bad_adoptions_are_refused)
{
    uint8_t *mem = owned_pages(2);
    struct dma_handle h;
    cr_assert_not(broker_adopt(&b, 1, W0, PAGE, mem, DMA_BIDIR, &h, err, sizeof err),
                  "adopted memory inside the DMA range, where windows are the broker's own");
    cr_assert(strstr(err, "session range"), "%s", err);
    cr_assert_not(broker_adopt(&b, 1, S0 + 8, PAGE, mem, DMA_BIDIR, &h, err, sizeof err),
                  "misaligned IOVA");
    cr_assert_not(broker_adopt(&b, 1, S0, PAGE, mem + 8, DMA_BIDIR, &h, err, sizeof err),
                  "misaligned memory");
    cr_assert_not(broker_adopt(&b, 1, S0, PAGE, NULL, DMA_BIDIR, &h, err, sizeof err), "NULL");
    cr_assert_not(broker_adopt(&b, 1, S0, PAGE, mem, 0, &h, err, sizeof err), "no direction");
    adopt(1, S0, mem, 2 * PAGE, DMA_BIDIR);
    cr_assert_not(broker_adopt(&b, 1, S0 + PAGE, PAGE, mem, DMA_BIDIR, &h, err, sizeof err),
                  "overlapping adoption");
    cr_assert(strstr(err, "overlaps"), "%s", err);
    broker_revoke_domain(&b, 1);
    free(mem);
}

/* Adopted memory is quiesced like any window but keeps its bytes: a
 * client may be copying a completed read out of it while its domain is
 * torn down (a scrub then corrupted the client's data). */
Test(broker, revoking_adopted_memory_quiesces_and_leaves_it_to_its_owner)
{
    uint8_t *mem = owned_pages(2);
    struct revoker r = { adopt(1, S0, mem, 2 * PAGE, DMA_BIDIR), false };
    struct dma_mapping m;
    uint8_t *p = broker_dma_map(&b, 1, "t", S0, PAGE, DMA_FROM_DEVICE, &m);
    cr_assert_not_null(p);
    pthread_t t = start_revoke(&r);
    cr_assert_not(r.done, "revoke finished while the device still wrote the memory");
    memset(p, 0x77, PAGE);
    broker_dma_unmap(&b, &m);
    pthread_join(t, NULL);
    cr_assert_eq(scrub_calls, 0, "adopted memory was scrubbed");
    for (uint64_t i = 0; i < PAGE; i++)
        cr_assert_eq(mem[i], 0x77, "byte %lu changed by the revoke", (unsigned long)i);
    mem[0] = 1;                 /* still the owner's memory: not unmapped */
    cr_assert_null(broker_dma_map(&b, 1, "t", S0, 8, DMA_FROM_DEVICE, &m),
                   "a device reached session memory after its window was revoked");
    cr_assert_eq(last_refusal(), BR_REVOKED);
    cr_assert_not(broker_revoke(&b, r.h, err, sizeof err), "revoked twice");
    free(mem);
}

Test(broker, revoke_domain_takes_adopted_windows_too)
{
    uint8_t *mem = owned_pages(1);
    grant(1, W0, PAGE, DMA_BIDIR);
    struct dma_handle h = adopt(1, S0, mem, PAGE, DMA_BIDIR);
    cr_assert_eq(broker_revoke_domain(&b, 1), 2);
    cr_assert_eq(b.win[h.window].state, WIN_FREE);
    struct dma_mapping m;
    cr_assert_null(broker_dma_map(&b, 1, "t", S0, 8, DMA_FROM_DEVICE, &m),
                   "a device reached session memory after teardown");
    free(mem);
}
