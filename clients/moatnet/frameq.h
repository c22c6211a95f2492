/*
 * frameq.h — a bounded FIFO of Ethernet frames, copied in and out, for
 * the hand-off between lwIP's thread (which queues frames to send) and
 * moatnet's pump thread (which alone touches the Nic session). Not
 * locked: moatnet holds its own mutex around every call.
 *
 * A full queue refuses the frame (counted in dropped): the caller's
 * protocol (TCP) retransmits, as it would after a busy wire.
 */
#ifndef MOAT_FRAMEQ_H
#define MOAT_FRAMEQ_H

#include <stdbool.h>
#include <stdint.h>

#define FRAMEQ_FRAME_MAX 1514u

struct frameq {
    uint8_t (*buf)[FRAMEQ_FRAME_MAX];
    uint16_t *len;
    uint32_t cap, head, n;
    uint64_t queued, dropped;
};

/* A queue of cap frames (cap >= 1); false when out of memory. */
bool frameq_init(struct frameq *q, uint32_t cap);
void frameq_fini(struct frameq *q);
/* Reserve the next slot for a frame of len bytes (14..FRAMEQ_FRAME_MAX):
 * returns where to write it, or NULL (counted as dropped) when the queue
 * is full or len is out of range. frameq_commit makes it visible. */
uint8_t *frameq_reserve(struct frameq *q, uint32_t len);
void frameq_commit(struct frameq *q);
/* The oldest frame (and its length), or NULL when empty; frameq_pop
 * drops it. */
const uint8_t *frameq_peek(const struct frameq *q, uint32_t i, uint32_t *len);
void frameq_pop(struct frameq *q, uint32_t n);

#endif /* MOAT_FRAMEQ_H */
