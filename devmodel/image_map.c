/* Reading a backing image through a shared mapping, surviving a file that
 * shrinks under us (contract in image_map.h). */
#include "image_map.h"
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

static struct sigaction prev_sigbus;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static bool installed;
static atomic_uint_fast64_t faults;

/* Set only around the copy in image_map_readv, on the copying thread. */
static _Thread_local sigjmp_buf *guard;
static _Thread_local const struct image_map *guard_map;

static bool in_map(const struct image_map *m, const void *addr)
{
    const uint8_t *a = addr;
    return m && a >= m->base && a < m->base + m->size;
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
    sigjmp_buf *g = guard;
    if (g && in_map(guard_map, si->si_addr)) {
        guard = NULL;
        siglongjmp(*g, 1);      /* SA_NODEFER: SIGBUS is not left blocked */
    }
    /* Not a read of ours: what would have happened without us. */
    if (prev_sigbus.sa_flags & SA_SIGINFO) {
        if (prev_sigbus.sa_sigaction) {
            prev_sigbus.sa_sigaction(sig, si, uc);
            return;
        }
    } else if (prev_sigbus.sa_handler != SIG_DFL && prev_sigbus.sa_handler != SIG_IGN) {
        prev_sigbus.sa_handler(sig);
        return;
    }
    /* Default action: the faulting access runs again and kills us. */
    signal(SIGBUS, SIG_DFL);
}

static void install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    installed = sigaction(SIGBUS, &sa, &prev_sigbus) == 0;
}

bool image_map_open(struct image_map *m, int fd, uint64_t size)
{
    m->base = NULL;
    m->size = 0;
    pthread_once(&install_once, install);
    if (!installed || size == 0 || size > SIZE_MAX)
        return false;
    void *p = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return false;
    m->base = p;
    m->size = size;
    return true;
}

void image_map_close(struct image_map *m)
{
    if (m->base)
        munmap((void *)(uintptr_t)m->base, (size_t)m->size);
    m->base = NULL;
    m->size = 0;
}

bool image_map_readv(const struct image_map *m, const struct iovec *iov, unsigned n,
                     uint64_t off)
{
    uint64_t len = 0;
    for (unsigned i = 0; i < n; i++)
        len += iov[i].iov_len;
    if (!m->base || off > m->size || len > m->size - off)
        return false;
    sigjmp_buf jb;
    if (sigsetjmp(jb, 0)) {     /* the file lost this range: SIGBUS */
        guard = NULL;
        guard_map = NULL;
        atomic_fetch_add_explicit(&faults, 1, memory_order_relaxed);
        return false;
    }
    guard_map = m;
    guard = &jb;
    atomic_signal_fence(memory_order_seq_cst);  /* armed before the copy, */
    const uint8_t *src = m->base + off;
    for (unsigned i = 0; i < n; src += iov[i].iov_len, i++)
        memcpy(iov[i].iov_base, src, iov[i].iov_len);
    atomic_signal_fence(memory_order_seq_cst);  /* disarmed after it */
    guard = NULL;
    return true;
}

uint64_t image_map_faults(void)
{
    return atomic_load_explicit(&faults, memory_order_relaxed);
}
