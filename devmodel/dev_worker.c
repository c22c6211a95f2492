/* Device worker skeleton (contract in dev_worker.h). */
#include <poll.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>
#include "clock.h"
#include "dev_worker.h"

void dev_worker_init(struct dev_worker *w, const struct dev_worker_ops *ops, void *dev,
                     pthread_mutex_t *lock, int efd, const uint32_t *poll_us)
{
    *w = (struct dev_worker){ .ops = ops, .dev = dev, .lock = lock, .efd = efd,
                              .poll_us = poll_us };
}

static bool ended(const struct dev_worker *w)
{
    return w->stop || (w->ops->halted && w->ops->halted(w->dev));
}

/* Sleep until a kick or the deadline (0: none). */
static void sleep_until(const struct dev_worker *w, uint64_t deadline, uint64_t now)
{
    struct pollfd p = { .fd = w->efd, .events = POLLIN };
    struct timespec ts, *tp = NULL;
    if (deadline) {
        uint64_t d = deadline > now ? deadline - now : 0;
        ts = (struct timespec){ .tv_sec = (time_t)(d / 1000000000u),
                                .tv_nsec = (long)(d % 1000000000u) };
        tp = &ts;
    }
    if (ppoll(&p, 1, tp, NULL) > 0) {
        uint64_t v;
        ssize_t r = read(w->efd, &v, sizeof v);     /* reset the counter */
        (void)r;
    }
}

static void *worker_main(void *arg)
{
    struct dev_worker *w = arg;
    pthread_mutex_lock(w->lock);
    uint64_t busy_at = clock_mono_ns();
    while (!ended(w)) {
        uint64_t deadline = 0;
        bool progress = w->ops->pass(w->dev, &deadline);
        uint64_t now = clock_mono_ns();
        if (progress) {
            busy_at = now;
            /* Let whoever waits for the lock in between passes (the vCPU's
             * register accesses, a quiesce): the mutex is not fair, and a
             * driver that keeps its device busy forever — a ring that
             * feeds itself — must not lock its own vCPU or moat's
             * teardown out. */
            pthread_mutex_unlock(w->lock);
            sched_yield();
            pthread_mutex_lock(w->lock);
            continue;
        }
        if (now - busy_at < (uint64_t)*w->poll_us * 1000u) {     /* spin a little first */
            pthread_mutex_unlock(w->lock);
            sched_yield();
            pthread_mutex_lock(w->lock);
            continue;
        }
        if (ended(w) || !w->ops->arm(w->dev)) {
            busy_at = clock_mono_ns();
            continue;
        }
        pthread_mutex_unlock(w->lock);
        sleep_until(w, deadline, now);
        pthread_mutex_lock(w->lock);
        if (w->ops->woke)
            w->ops->woke(w->dev);
        busy_at = clock_mono_ns();
    }
    pthread_mutex_unlock(w->lock);
    return NULL;
}

void dev_worker_kick(const struct dev_worker *w)
{
    uint64_t one = 1;
    ssize_t r = write(w->efd, &one, sizeof one);    /* EAGAIN: already signalled */
    (void)r;
}

bool dev_worker_start(struct dev_worker *w, struct pci_func *f, const char *prefix)
{
    if (w->running)
        return true;
    w->stop = false;
    if (!pci_worker_start(f, &w->thread, worker_main, w, prefix))
        return false;
    w->running = true;
    return true;
}

void dev_worker_stop(struct dev_worker *w)
{
    if (!w->running)
        return;
    w->stop = true;
    dev_worker_kick(w);
    pthread_mutex_unlock(w->lock);      /* it needs the lock to finish its pass */
    pthread_join(w->thread, NULL);
    pthread_mutex_lock(w->lock);
    w->running = false;
}
