/* A bounded FIFO of frames (contract in frameq.h). */
#include "frameq.h"
#include <stdlib.h>

bool frameq_init(struct frameq *q, uint32_t cap)
{
    *q = (struct frameq){ .cap = cap };
    q->buf = cap ? calloc(cap, sizeof *q->buf) : NULL;
    q->len = cap ? calloc(cap, sizeof *q->len) : NULL;
    if (!q->buf || !q->len) {
        frameq_fini(q);
        return false;
    }
    return true;
}

void frameq_fini(struct frameq *q)
{
    free(q->buf);
    free(q->len);
    *q = (struct frameq){ 0 };
}

uint8_t *frameq_reserve(struct frameq *q, uint32_t len)
{
    if (q->n == q->cap || len < 14 || len > FRAMEQ_FRAME_MAX) {
        q->dropped++;
        return NULL;
    }
    uint32_t at = (q->head + q->n) % q->cap;
    q->len[at] = (uint16_t)len;
    return q->buf[at];
}

void frameq_commit(struct frameq *q)
{
    q->n++;
    q->queued++;
}

const uint8_t *frameq_peek(const struct frameq *q, uint32_t i, uint32_t *len)
{
    if (i >= q->n)
        return NULL;
    uint32_t at = (q->head + i) % q->cap;
    *len = q->len[at];
    return q->buf[at];
}

void frameq_pop(struct frameq *q, uint32_t n)
{
    if (n > q->n)
        n = q->n;
    q->head = (q->head + n) % q->cap;
    q->n -= n;
}
