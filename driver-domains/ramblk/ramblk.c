/*
 * ramblk — a BlockDevice served from the domain's private RAM: the cap
 * "<domain>.blk0" for the capability suites and for trying libmoat,
 * moatctl and moat-nbd before a real NVMe driver lands. Its contents live
 * as long as the domain's incarnation (a restart starts it zeroed).
 *
 * args: size=BYTES (default 64M)  bs=BLOCK (512)  max=BLOCKS per request
 *       (256)  ro=1 (read-only)  queues=N (sessions at once, default 4)
 * Hostile-server test modes (never in real use): hostile=MODE after=N
 *   answers every request after the first N with a malformed completion:
 *   badtag (tag not outstanding), badstatus (unknown status), overlong
 *   (more blocks than asked), dup (a second completion for one request),
 *   corrupt (an impossible producer index).
 */
#include "dd.h"

enum hostile { H_NONE, H_BADTAG, H_BADSTATUS, H_OVERLONG, H_DUP, H_CORRUPT };

static struct {
    uint8_t *disk;
    struct moat_blk_geometry geo;
    enum hostile hostile;
    uint64_t after, seen;
} ram;

static bool misbehave(struct dd_blk_req *req)
{
    if (ram.hostile == H_NONE || ram.seen++ < ram.after)
        return false;
    uint64_t tag = dd_blk_tag(req);
    switch (ram.hostile) {
    case H_BADTAG:    dd_blk_complete_raw(req, tag ^ (0x5aull << 40), MOAT_ST_OK, req->blocks); break;
    case H_BADSTATUS: dd_blk_complete_raw(req, tag, 99, 0); break;
    case H_OVERLONG:  dd_blk_complete_raw(req, tag, MOAT_ST_OK, req->blocks + 1); break;
    case H_DUP:
        dd_blk_complete_raw(req, tag, MOAT_ST_OK, req->blocks);
        return false;           /* and the real completion after it */
    case H_CORRUPT:   dd_blk_corrupt_cq(req, 0x7fffffffu); break;
    case H_NONE:      return false;
    }
    return true;
}

static void submit(void *ctx, struct dd_blk_req *req)
{
    (void)ctx;
    if (misbehave(req))
        return;                 /* left unfinished on purpose */
    uint64_t off = req->lba * ram.geo.block_size;
    uint64_t len = (uint64_t)req->blocks * ram.geo.block_size;
    switch (req->op) {
    case MOAT_BLK_READ:         memcpy(req->buf, ram.disk + off, len); break;
    case MOAT_BLK_WRITE:        memcpy(ram.disk + off, req->buf, len); break;
    case MOAT_BLK_WRITE_ZEROES:
    case MOAT_BLK_DISCARD:      memset(ram.disk + off, 0, len); break;
    case MOAT_BLK_FLUSH:        break;  /* RAM: every completed write is already there */
    default:
        dd_blk_complete(req, MOAT_ST_EINVAL);
        return;
    }
    dd_blk_complete(req, MOAT_ST_OK);
}

static enum hostile parse_hostile(const char *args)
{
    static const char *const names[] = { "", "badtag", "badstatus", "overlong", "dup", "corrupt" };
    char v[16];
    if (!dd_arg(args, "hostile", v, sizeof v))
        return H_NONE;
    for (unsigned i = 1; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(v, names[i]) == 0)
            return (enum hostile)i;
    dd_panic("ramblk: unknown hostile mode '%s'", v);
}

void domain_main(const char *args)
{
    uint64_t size = dd_arg_size(args, "size", 64ull << 20);
    ram.geo = (struct moat_blk_geometry){
        .block_size = (uint32_t)dd_arg_u64(args, "bs", 512),
        .max_blocks = (uint32_t)dd_arg_u64(args, "max", 256),
        .flags = MOAT_BLK_F_FLUSH | MOAT_BLK_F_WRITE_ZEROES | MOAT_BLK_F_DISCARD |
                 (dd_arg_u64(args, "ro", 0) ? MOAT_BLK_F_READONLY : 0),
        .queues = (uint32_t)dd_arg_u64(args, "queues", 4),
    };
    if (ram.geo.block_size == 0 || size % ram.geo.block_size)
        dd_panic("ramblk: size %lu is not a multiple of the block size %u", size,
                 ram.geo.block_size);
    ram.geo.blocks = size / ram.geo.block_size;
    ram.hostile = parse_hostile(args);
    ram.after = dd_arg_u64(args, "after", 0);
    ram.disk = dd_mem_alloc(size);
    static const struct dd_blk_ops ops = { .submit = submit };
    if (!dd_blk_serve("blk0", &ram.geo, &ops, NULL))
        dd_panic("ramblk: moat refused the cap");
    dd_log("ramblk: %lu MiB in %u-byte blocks%s%s", size >> 20, ram.geo.block_size,
           (ram.geo.flags & MOAT_BLK_F_READONLY) ? ", read-only" : "",
           ram.hostile ? ", HOSTILE test mode" : "");
    dd_ready();
    dd_run();
}
