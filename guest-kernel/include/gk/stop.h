/*
 * gk/stop.h — the orderly stop (moat/platform_abi.h: stop_req). dd_ready
 * (bring-up is over) and gk_run announce with gk_stop_watch that the run
 * loop watches for the request; from then on each pass calls gk_stop_poll,
 * which starts the stop once: sessions take no
 * new requests, the loop runs until those in flight are answered (at most
 * GK_STOP_DRAIN_NS), the driver's hook (dd_stop_hook in dd.h) tears its
 * device down, and the domain exits with code 0. The VMM forces the stop
 * after its grace time whatever happens here. Ring 3, the domain's thread.
 */
#ifndef GK_STOP_H
#define GK_STOP_H

#include <stdbool.h>

#define GK_STOP_DRAIN_NS 500000000ul

/* Tell the VMM this loop honours stop requests (a store, no exit). */
void gk_stop_watch(void);
/* Start the stop if it is requested and not already under way; does not
 * return then. False otherwise. */
bool gk_stop_poll(void);

#endif /* GK_STOP_H */
