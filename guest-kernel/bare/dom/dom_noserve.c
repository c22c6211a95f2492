/* The session server's entry points for bare images that serve no
 * sessions (the virtio-net domain, app domains): the runtime's orderly
 * stop and fault injection call them; there is nothing to drain, count or
 * corrupt. Images that serve sessions link dd_serve.c instead. */
#include "dd.h"
#include "dd_session.h"

void dd_serve_stats(struct dd_serve_stats *out) { *out = (struct dd_serve_stats){ 0 }; }
void serve_drain_start(void) {}
unsigned serve_in_flight(void) { return 0; }
bool dd_serve_corrupt_ring(void) { return false; }
