/* NVMe PRP walker (contract in nvme_prp.h). Every address is guest input:
 * each step is overflow-checked, and the number of list reads is bounded
 * by the transfer length (every list page yields at least one data entry
 * or moves to a page-aligned list that yields many). */
#include <endian.h>
#include <stddef.h>
#include "nvme_prp.h"

#define PRP_LIST_MAX 512u   /* entries of a 4 KiB list page; larger pages read in chunks */

struct walk {
    struct nvme_prp_seg *segs;
    unsigned max, n;
    struct nvme_prp_seg *wrapped;
};

/* Append [iova, iova + len), merging with the previous segment when it
 * continues it. */
static enum nvme_prp_result add_seg(struct walk *w, uint64_t iova, uint64_t len)
{
    uint64_t end;
    if (__builtin_add_overflow(iova, len, &end)) {
        if (w->wrapped)
            *w->wrapped = (struct nvme_prp_seg){ .iova = iova, .len = len };
        return NVME_PRP_OVERFLOW;
    }
    if (w->n > 0) {
        struct nvme_prp_seg *last = &w->segs[w->n - 1];
        if (last->iova + last->len == iova) {   /* cannot wrap: checked when added */
            last->len += len;
            return NVME_PRP_OK;
        }
    }
    if (w->n == w->max)
        return NVME_PRP_TOO_MANY;
    w->segs[w->n++] = (struct nvme_prp_seg){ .iova = iova, .len = len };
    return NVME_PRP_OK;
}

/* The data pages after the first: `rest` bytes described by the PRP list
 * that starts at list. */
static enum nvme_prp_result walk_list(struct walk *w, uint64_t list, uint64_t rest,
                                      uint32_t page, nvme_prp_read_fn read, void *ctx)
{
    uint64_t entries = rest / page + (rest % page != 0);
    uint64_t buf[PRP_LIST_MAX];
    if (list % 8)
        return NVME_PRP_BAD_OFFSET;
    if (!read)
        return NVME_PRP_LIST_REFUSED;
    while (entries > 0) {
        uint64_t slots = (page - list % page) / 8;     /* entries to the end of this page */
        bool chained = entries > slots;                 /* last slot points to the next list */
        uint64_t take = chained ? slots : entries;
        uint64_t ndata = chained ? slots - 1 : take;
        uint64_t next = 0;
        for (uint64_t done = 0; done < take;) {
            uint32_t chunk = (uint32_t)(take - done < PRP_LIST_MAX ? take - done : PRP_LIST_MAX);
            if (!read(ctx, list + done * 8, buf, chunk))
                return NVME_PRP_LIST_REFUSED;
            for (uint32_t i = 0; i < chunk; i++, done++) {
                uint64_t e = le64toh(buf[i]);
                if (done == ndata) {        /* the chain pointer, last of the page */
                    next = e;
                    done++;
                    break;
                }
                if (e % page)
                    return NVME_PRP_BAD_OFFSET;
                uint64_t len = rest < page ? rest : page;
                enum nvme_prp_result r = add_seg(w, e, len);
                if (r != NVME_PRP_OK)
                    return r;
                rest -= len;
            }
        }
        entries -= ndata;
        if (chained) {
            if (next % page)
                return NVME_PRP_BAD_OFFSET;
            list = next;
        }
    }
    return NVME_PRP_OK;
}

enum nvme_prp_result nvme_prp_walk(const struct nvme_prp_req *r, nvme_prp_read_fn read,
                                   void *ctx, struct nvme_prp_seg *segs, unsigned max,
                                   unsigned *nseg)
{
    struct walk w = { .segs = segs, .max = max, .n = 0, .wrapped = r->wrapped };
    uint32_t page = r->page;
    *nseg = 0;
    if (page < 4096 || (page & (page - 1)))
        return NVME_PRP_BAD_ARGS;
    if (r->len == 0)
        return NVME_PRP_OK;
    if (r->prp1 % 4)
        return NVME_PRP_BAD_OFFSET;
    uint64_t first = page - r->prp1 % page;
    if (first > r->len)
        first = r->len;
    enum nvme_prp_result res = add_seg(&w, r->prp1, first);
    uint64_t rest = r->len - first;
    if (res == NVME_PRP_OK && rest > 0) {
        if (rest <= page)
            res = r->prp2 % page ? NVME_PRP_BAD_OFFSET : add_seg(&w, r->prp2, rest);
        else
            res = walk_list(&w, r->prp2, rest, page, read, ctx);
    }
    *nseg = w.n;
    return res;
}

const char *nvme_prp_result_name(enum nvme_prp_result r)
{
    switch (r) {
    case NVME_PRP_OK:           return "ok";
    case NVME_PRP_BAD_OFFSET:   return "invalid PRP offset";
    case NVME_PRP_LIST_REFUSED: return "PRP list not readable";
    case NVME_PRP_TOO_MANY:     return "too many segments";
    case NVME_PRP_OVERFLOW:     return "address overflow";
    case NVME_PRP_BAD_ARGS:     return "invalid page size";
    }
    return "unknown";
}
