/* The orderly stop (contract in gk/stop.h). */
#include "dd.h"
#include "gk/console.h"
#include "gk/platform.h"
#include "gk/runtime.h"
#include "gk/stop.h"
#include "gk/timer.h"
#include "dd_session.h"

static void (*hook_fn)(void *ctx);
static void *hook_ctx;
static bool watching, stopping;

void dd_stop_hook(void (*fn)(void *ctx), void *ctx)
{
    hook_fn = fn;
    hook_ctx = ctx;
}

void gk_stop_watch(void)
{
    watching = true;
    struct moat_platform_page *p = platform_page();
    __atomic_store_n(&p->guest_flags, p->guest_flags | MOAT_GUEST_F_ORDERLY_STOP,
                     __ATOMIC_RELEASE);
}

bool gk_stop_poll(void)
{
    const struct moat_platform_page *p = platform_page();
    if (!watching || stopping || !__atomic_load_n(&p->stop_req, __ATOMIC_ACQUIRE))
        return false;
    stopping = true;
    uint64_t t0 = timer_now_ns();
    serve_drain_start();
    unsigned owed = serve_in_flight();
    dd_log("orderly stop requested: %u session request%s in flight", owed,
           owed == 1 ? "" : "s");
    while (serve_in_flight() && timer_now_ns() - t0 < GK_STOP_DRAIN_NS)
        gk_run_once();
    owed = serve_in_flight();
    if (owed)
        dd_log("orderly stop: %u request%s still in flight after %lu ms; stopping anyway",
               owed, owed == 1 ? "" : "s", GK_STOP_DRAIN_NS / 1000000ul);
    uint64_t t1 = timer_now_ns();
    if (hook_fn)
        hook_fn(hook_ctx);
    dd_log("orderly stop: drained in %lu us, device torn down in %lu us",
           (t1 - t0) / 1000u, (timer_now_ns() - t1) / 1000u);
    dd_exit(0);
}
