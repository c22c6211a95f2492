/* moatnet's frame queue (clients/moatnet/frameq.c), the hand-off from
 * lwIP's thread to the pump: FIFO order across wrap-around, a full queue
 * and bad lengths refused and counted, partial pops. */
#include <criterion/criterion.h>
#include <string.h>
#include "moatnet/frameq.h"

static void put(struct frameq *q, uint32_t len, uint8_t tag)
{
    uint8_t *p = frameq_reserve(q, len);
    cr_assert_not_null(p, "a %u-byte frame was refused with %u of %u queued", len, q->n, q->cap);
    memset(p, tag, len);
    frameq_commit(q);
}

Test(frameq, fifo_order_across_wraps)
{
    struct frameq q;
    cr_assert(frameq_init(&q, 4));
    uint8_t next_put = 0, next_get = 0;
    for (int round = 0; round < 10; round++) {
        while (q.n < 3)
            put(&q, 60 + next_put, next_put), next_put++;
        for (uint32_t i = 0; i < 2; i++) {
            uint32_t len;
            const uint8_t *f = frameq_peek(&q, 0, &len);
            cr_assert_not_null(f);
            cr_assert_eq(len, 60u + next_get, "frame %u has length %u", next_get, len);
            cr_assert_eq(f[0], next_get, "frame %u came out of order (%u)", next_get, f[0]);
            cr_assert_eq(f[len - 1], next_get);
            frameq_pop(&q, 1);
            next_get++;
        }
    }
    cr_assert_eq(q.queued, next_put);
    cr_assert_eq(q.dropped, 0);
    frameq_fini(&q);
}

Test(frameq, full_queue_and_bad_lengths_are_counted_drops)
{
    struct frameq q;
    cr_assert(frameq_init(&q, 2));
    put(&q, 14, 1);
    put(&q, FRAMEQ_FRAME_MAX, 2);
    cr_assert_null(frameq_reserve(&q, 60), "a full queue took a frame");
    frameq_pop(&q, 1);
    cr_assert_null(frameq_reserve(&q, 13), "a runt was taken");
    cr_assert_null(frameq_reserve(&q, FRAMEQ_FRAME_MAX + 1), "a giant was taken");
    cr_assert_eq(q.dropped, 3);
    uint32_t len;
    cr_assert_null(frameq_peek(&q, 1, &len), "peek past the end");
    cr_assert_not_null(frameq_peek(&q, 0, &len));
    cr_assert_eq(len, FRAMEQ_FRAME_MAX);
    frameq_pop(&q, 5);          /* more than queued: empties it */
    cr_assert_eq(q.n, 0);
    frameq_fini(&q);
}
