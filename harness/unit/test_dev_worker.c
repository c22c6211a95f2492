/* The device-worker skeleton (devmodel/dev_worker.c). Regression for
 * fuzz_nvme's self-feeding-ring-locks-out-the-vcpu: a driver made its
 * NVMe completion queue overwrite its own shadow doorbells and SQ, so
 * the worker always had work and re-took the (unfair) model lock at
 * once; the vCPU's register accesses — and a quiesce — waited forever. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include "dev_worker.h"
#include "pci.h"

struct busy_dev {
    pthread_mutex_t lock;
    int efd;
    uint32_t poll_us;
    atomic_ulong passes;
    struct dev_worker w;
    struct pci_bus bus;
    struct pci_func *f;
};

/* Never done: every pass makes "progress", like a ring that feeds itself. */
static bool pass_forever(void *dev, uint64_t *deadline_ns)
{
    struct busy_dev *b = dev;
    (void)deadline_ns;
    atomic_fetch_add(&b->passes, 1);
    return true;
}

static bool arm_never(void *dev)
{
    (void)dev;
    return false;
}

static const struct dev_worker_ops busy_ops = { .pass = pass_forever, .arm = arm_never };

static struct busy_dev b;

static void setup(void)
{
    pthread_mutex_init(&b.lock, NULL);
    b.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    cr_assert_geq(b.efd, 0);
    pci_bus_init(&b.bus, "t", 1, NULL, &(struct pci_platform_ops){ 0 });
    b.f = pci_func_add(&b.bus, "busy0", 0x1234, 0x1, 0xFF0000, MOAT_NO_GSI, NULL, NULL);
    cr_assert_not_null(b.f);
    dev_worker_init(&b.w, &busy_ops, &b, &b.lock, b.efd, &b.poll_us);
}

static void teardown(void)
{
    pci_bus_fini(&b.bus);
    close(b.efd);
    pthread_mutex_destroy(&b.lock);
}

Test(dev_worker, self_feeding_ring_locks_out_the_vcpu, .init = setup, .fini = teardown,
     .timeout = 30)
{
    pthread_mutex_lock(&b.lock);
    cr_assert(dev_worker_start(&b.w, b.f, "busy"), "cannot start the worker");
    pthread_mutex_unlock(&b.lock);
    while (atomic_load(&b.passes) < 1000)       /* it is spinning through passes */
        sched_yield();
    /* The vCPU (this thread) takes the model lock a hundred times, each
     * within a second, while the worker never runs out of work. */
    for (int i = 0; i < 100; i++) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += 1;
        int rc = pthread_mutex_timedlock(&b.lock, &dl);
        cr_assert_eq(rc, 0, "attempt %d: the model lock was not free within 1 s of a busy "
                     "worker (%s)", i, rc == ETIMEDOUT ? "timed out" : "error");
        pthread_mutex_unlock(&b.lock);
    }
    /* And a quiesce stops it. */
    pthread_mutex_lock(&b.lock);
    dev_worker_stop(&b.w);
    cr_assert_not(b.w.running, "the worker still runs after stop");
    pthread_mutex_unlock(&b.lock);
}
