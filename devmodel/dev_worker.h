/*
 * dev_worker.h — the worker thread skeleton of a device model (NVMe,
 * virtio-net): run passes of work under the model's lock while there is
 * progress, spin poll_us more, then re-arm notifications and sleep on the
 * model's eventfd (doorbells, ioeventfds and kicks write it) until kicked
 * or until the deadline a pass asked for (interrupt coalescing).
 *
 * Between passes that made progress the worker lets go of the lock (and
 * the CPU) once, so a device a driver keeps busy forever never locks out
 * the vCPU's register accesses or a quiesce.
 *
 * The model supplies the work, keeps the lock and the eventfd, and calls
 * start/stop with its lock held (stop drops it while joining: the worker
 * needs it to finish its pass). Kick is any thread, no lock.
 */
#ifndef MOAT_DEV_WORKER_H
#define MOAT_DEV_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "pci.h"

struct dev_worker_ops {
    /* One pass (lock held; may drop it while it works). True when it made
     * progress. *deadline_ns: when to wake at the latest (clock_mono_ns;
     * 0: no limit). */
    bool (*pass)(void *dev, uint64_t *deadline_ns);
    /* About to sleep (lock held): re-arm notifications. False when work
     * appeared meanwhile: the worker runs another pass instead. */
    bool (*arm)(void *dev);
    /* Should the worker end besides stop (a fatal device state)? May be NULL. */
    bool (*halted)(void *dev);
    /* It woke from a sleep (lock held; for the model's counters). May be NULL. */
    void (*woke)(void *dev);
};

struct dev_worker {
    const struct dev_worker_ops *ops;
    void *dev;
    pthread_mutex_t *lock;      /* the model's */
    int efd;                    /* the model's eventfd */
    const uint32_t *poll_us;    /* the model's setting: spin this long before sleeping */
    pthread_t thread;
    bool running, stop;         /* under *lock */
};

void dev_worker_init(struct dev_worker *w, const struct dev_worker_ops *ops, void *dev,
                     pthread_mutex_t *lock, int efd, const uint32_t *poll_us);
/* Start the thread (lock held) as "<prefix>-<function name>" on the bus's
 * worker CPUs; true if it runs (or already did). */
bool dev_worker_start(struct dev_worker *w, struct pci_func *f, const char *prefix);
/* Stop and join it (lock held; dropped while joining). */
void dev_worker_stop(struct dev_worker *w);
/* Wake it (any thread). */
void dev_worker_kick(const struct dev_worker *w);

#endif /* MOAT_DEV_WORKER_H */
