/* Shared SPSC ring (moat/ring.h): geometry, empty/full, wrap-around,
 * batches, a hostile peer's impossible indices, kick decisions, and a
 * two-thread run of a million entries that sleeps only when armed. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "moat/ring.h"

#define N 8u
#define ESZ 16u

static uint8_t *mem;
static size_t len;
static struct moat_ring prod, cons;

static void setup(void)
{
    len = moat_ring_bytes(N, ESZ);
    mem = calloc(1, len);
    cr_assert_eq(moat_ring_format(mem, len, N, ESZ), MOAT_RING_OK);
    cr_assert_eq(moat_ring_attach(&prod, mem, len, N, ESZ, MOAT_RING_PRODUCER), MOAT_RING_OK);
    cr_assert_eq(moat_ring_attach(&cons, mem, len, N, ESZ, MOAT_RING_CONSUMER), MOAT_RING_OK);
}
static void teardown(void) { free(mem); }
TestSuite(ring, .init = setup, .fini = teardown);

static struct moat_ring_shared *sh(void) { return (struct moat_ring_shared *)mem; }

static void put(uint32_t n, uint64_t first)
{
    uint32_t space;
    cr_assert_eq(moat_ring_space(&prod, &space), MOAT_RING_OK);
    cr_assert_geq(space, n, "only %u free, need %u", space, n);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t v = first + i;
        memcpy(moat_ring_slot(&prod, i), &v, sizeof v);
    }
    bool kick;
    cr_assert_eq(moat_ring_publish(&prod, n, &kick), MOAT_RING_OK);
}

static void take(uint32_t n, uint64_t first)
{
    uint32_t avail;
    cr_assert_eq(moat_ring_avail(&cons, &avail), MOAT_RING_OK);
    cr_assert_geq(avail, n, "only %u ready, want %u", avail, n);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t v;
        memcpy(&v, moat_ring_peek(&cons, i), sizeof v);
        cr_assert_eq(v, first + i, "entry %u holds %llu, want %llu", i, (unsigned long long)v,
                     (unsigned long long)(first + i));
    }
    bool kick;
    cr_assert_eq(moat_ring_consume(&cons, n, &kick), MOAT_RING_OK);
}

Test(ring, geometry_is_checked)
{
    cr_assert_eq(moat_ring_bytes(6, ESZ), 0, "non-power-of-two entries accepted");
    cr_assert_eq(moat_ring_bytes(N, 12), 0, "entry size not a multiple of 8 accepted");
    cr_assert_eq(moat_ring_bytes(1, ESZ), 0, "one-entry ring accepted");
    cr_assert_eq(moat_ring_bytes(MOAT_RING_MAX_ENTRIES * 2, ESZ), 0, "oversized ring accepted");
    cr_assert_eq(moat_ring_bytes(N, ESZ), MOAT_RING_HDR_SIZE + N * ESZ);
    cr_assert_eq(moat_ring_format(mem, len - 1, N, ESZ), MOAT_RING_EINVAL, "short buffer");
    struct moat_ring r;
    cr_assert_eq(moat_ring_attach(&r, mem, len, N * 2, ESZ, MOAT_RING_CONSUMER), MOAT_RING_EINVAL,
                 "attach with other entries than the header accepted");
    cr_assert_eq(moat_ring_attach(&r, mem, len, N, ESZ * 2, MOAT_RING_CONSUMER), MOAT_RING_EINVAL,
                 "attach with another entry size accepted");
    put(1, 1);
    cr_assert_eq(moat_ring_attach(&r, mem, len, N, ESZ, MOAT_RING_PRODUCER), MOAT_RING_EINVAL,
                 "a producer attached to a ring whose producer index moved");
    sh()->magic = 0;
    sh()->prod = 0;
    cr_assert_eq(moat_ring_attach(&r, mem, len, N, ESZ, MOAT_RING_CONSUMER), MOAT_RING_EINVAL,
                 "attach without magic accepted");
    uint32_t n;
    cr_assert_eq(moat_ring_avail(&r, &n), MOAT_RING_ECORRUPT, "a failed attach left a usable ring");
}

Test(ring, empty_then_full)
{
    uint32_t n;
    cr_assert_eq(moat_ring_avail(&cons, &n), MOAT_RING_OK);
    cr_assert_eq(n, 0, "fresh ring has %u entries", n);
    cr_assert_eq(moat_ring_space(&prod, &n), MOAT_RING_OK);
    cr_assert_eq(n, N);
    put(N, 100);
    cr_assert_eq(moat_ring_space(&prod, &n), MOAT_RING_OK);
    cr_assert_eq(n, 0, "full ring reports %u free", n);
    bool kick;
    cr_assert_eq(moat_ring_publish(&prod, 1, &kick), MOAT_RING_EINVAL, "publish past full");
    take(N, 100);
    cr_assert_eq(moat_ring_consume(&cons, 1, &kick), MOAT_RING_EINVAL, "consume past empty");
    cr_assert_eq(moat_ring_avail(&cons, &n), MOAT_RING_OK, "a caller's EINVAL is not latched");
}

Test(ring, wraps_around_the_32_bit_indices)
{
    uint32_t start = UINT32_MAX - 2;
    prod.idx = cons.idx = start;
    sh()->prod = sh()->cons = start;
    for (uint64_t round = 0; round < 5; round++) {
        put(5, round * 10);
        take(5, round * 10);
    }
    cr_assert_lt(sh()->prod, start, "indices did not wrap");
    cr_assert_eq(sh()->prod, sh()->cons);
}

Test(ring, batches_keep_order)
{
    put(3, 0);
    put(4, 3);
    uint32_t n;
    cr_assert_eq(moat_ring_avail(&cons, &n), MOAT_RING_OK);
    cr_assert_eq(n, 7);
    take(2, 0);
    take(5, 2);
    put(8, 7);
    take(8, 7);
}

Test(ring, producer_claiming_too_much_is_corruption_and_latched)
{
    put(2, 0);
    sh()->prod = cons.idx + N + 1;      /* more outstanding than the ring holds */
    uint32_t n;
    cr_assert_eq(moat_ring_avail(&cons, &n), MOAT_RING_ECORRUPT);
    cr_assert_eq(n, 0, "corrupt ring reported %u entries", n);
    sh()->prod = 2;                     /* even after the peer "fixes" it */
    cr_assert_eq(moat_ring_avail(&cons, &n), MOAT_RING_ECORRUPT, "corruption not latched");
    bool kick;
    cr_assert_eq(moat_ring_consume(&cons, 1, &kick), MOAT_RING_ECORRUPT);
    cr_assert_not(moat_ring_arm(&cons), "a broken ring says it is safe to sleep");
}

Test(ring, consumer_running_ahead_is_corruption_and_latched)
{
    put(2, 0);
    sh()->cons = 3;                     /* consumed an entry never published */
    uint32_t n;
    cr_assert_eq(moat_ring_space(&prod, &n), MOAT_RING_ECORRUPT);
    bool kick;
    cr_assert_eq(moat_ring_publish(&prod, 1, &kick), MOAT_RING_ECORRUPT);
    sh()->cons = 0;
    cr_assert_eq(moat_ring_space(&prod, &n), MOAT_RING_ECORRUPT, "corruption not latched");
}

Test(ring, wrong_role_calls_are_refused)
{
    uint32_t n;
    bool kick;
    cr_assert_eq(moat_ring_avail(&prod, &n), MOAT_RING_EINVAL);
    cr_assert_eq(moat_ring_space(&cons, &n), MOAT_RING_EINVAL);
    cr_assert_eq(moat_ring_publish(&cons, 1, &kick), MOAT_RING_EINVAL);
    cr_assert_eq(moat_ring_consume(&prod, 1, &kick), MOAT_RING_EINVAL);
}

Test(ring, kicks_only_when_asked)
{
    cr_assert(moat_ring_arm(&cons), "empty ring: consumer may sleep");
    bool kick;
    memset(moat_ring_slot(&prod, 0), 0, ESZ);
    cr_assert_eq(moat_ring_publish(&prod, 1, &kick), MOAT_RING_OK);
    cr_assert(kick, "armed consumer not kicked");
    cr_assert_eq(moat_ring_publish(&prod, 0, &kick), MOAT_RING_OK);
    cr_assert_not(kick, "empty publish kicked");
    cr_assert_eq(moat_ring_publish(&prod, 1, &kick), MOAT_RING_OK);
    cr_assert_not(kick, "consumer kicked again without re-arming");
    cr_assert_not(moat_ring_arm(&cons), "entries pending: arm must say do not sleep");

    put(N - 2, 0);                      /* now full */
    cr_assert(moat_ring_arm(&prod), "full ring: producer may sleep");
    cr_assert_eq(moat_ring_consume(&cons, 1, &kick), MOAT_RING_OK);
    cr_assert(kick, "armed producer not kicked when space freed");
    cr_assert_eq(moat_ring_consume(&cons, 1, &kick), MOAT_RING_OK);
    cr_assert_not(kick, "producer kicked again without re-arming");
}

/* ---- two threads, sleeping only through arm + kick ----------------------- */

struct waiter {
    pthread_mutex_t m;
    pthread_cond_t c;
    bool kicked;
};
static struct waiter wake_prod = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false };
static struct waiter wake_cons = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false };
static uint64_t sleeps[2];

static void kick_it(struct waiter *w)
{
    pthread_mutex_lock(&w->m);
    w->kicked = true;
    pthread_cond_signal(&w->c);
    pthread_mutex_unlock(&w->m);
}

static void sleep_until_kicked(struct waiter *w)
{
    pthread_mutex_lock(&w->m);
    while (!w->kicked)
        pthread_cond_wait(&w->c, &w->m);
    w->kicked = false;
    pthread_mutex_unlock(&w->m);
}

#define TOTAL 1000000ull

static void *producer_thread(void *arg)
{
    (void)arg;
    uint64_t next = 0, seed = 1;
    while (next < TOTAL) {
        uint32_t space;
        if (moat_ring_space(&prod, &space) != MOAT_RING_OK)
            return (void *)1;
        if (space == 0) {
            if (moat_ring_arm(&prod)) {
                sleeps[0]++;
                sleep_until_kicked(&wake_prod);
            }
            continue;
        }
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t batch = (uint32_t)(seed >> 33) % space + 1;
        if (batch > TOTAL - next)
            batch = (uint32_t)(TOTAL - next);
        for (uint32_t i = 0; i < batch; i++) {
            uint64_t v = next + i;
            memcpy(moat_ring_slot(&prod, i), &v, sizeof v);
        }
        bool kick;
        if (moat_ring_publish(&prod, batch, &kick) != MOAT_RING_OK)
            return (void *)1;
        next += batch;
        if (kick)
            kick_it(&wake_cons);
    }
    return NULL;
}

Test(ring, a_million_entries_across_threads_in_order, .timeout = 60)
{
    free(mem);
    len = moat_ring_bytes(256, ESZ);
    mem = calloc(1, len);
    cr_assert_eq(moat_ring_format(mem, len, 256, ESZ), MOAT_RING_OK);
    cr_assert_eq(moat_ring_attach(&prod, mem, len, 256, ESZ, MOAT_RING_PRODUCER), MOAT_RING_OK);
    cr_assert_eq(moat_ring_attach(&cons, mem, len, 256, ESZ, MOAT_RING_CONSUMER), MOAT_RING_OK);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, producer_thread, NULL), 0);
    uint64_t want = 0;
    while (want < TOTAL) {
        uint32_t n;
        cr_assert_eq(moat_ring_avail(&cons, &n), MOAT_RING_OK);
        if (n == 0) {
            if (moat_ring_arm(&cons)) {
                sleeps[1]++;
                sleep_until_kicked(&wake_cons);
            }
            continue;
        }
        for (uint32_t i = 0; i < n; i++) {
            uint64_t v;
            memcpy(&v, moat_ring_peek(&cons, i), sizeof v);
            cr_assert_eq(v, want + i, "entry %llu arrived as %llu",
                         (unsigned long long)(want + i), (unsigned long long)v);
        }
        bool kick;
        cr_assert_eq(moat_ring_consume(&cons, n, &kick), MOAT_RING_OK);
        want += n;
        if (kick)
            kick_it(&wake_prod);
    }
    void *rc;
    pthread_join(t, &rc);
    cr_assert_null(rc, "producer saw an error");
    cr_log_info("ring: %llu entries, producer slept %llu times, consumer %llu times",
                TOTAL, (unsigned long long)sleeps[0], (unsigned long long)sleeps[1]);
}

Test(ring, consumer_may_attach_after_the_producer_published)
{
    put(3, 100);
    struct moat_ring late;
    cr_assert_eq(moat_ring_attach(&late, mem, len, N, ESZ, MOAT_RING_CONSUMER), MOAT_RING_OK,
                 "a client may publish before the domain attaches");
    uint32_t n;
    cr_assert_eq(moat_ring_avail(&late, &n), MOAT_RING_OK);
    cr_assert_eq(n, 3, "the late consumer sees %u entries, expected 3", n);
    struct moat_ring late_prod;
    cr_assert_eq(moat_ring_attach(&late_prod, mem, len, N, ESZ, MOAT_RING_PRODUCER), MOAT_RING_EINVAL,
                 "a second producer attached to a ring whose producer index moved");
}
