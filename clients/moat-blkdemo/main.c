/*
 * moat-blkdemo — write a pattern to a BlockDevice cap, flush, read it back,
 * verify every byte and print the throughput of each phase. What `make run`
 * runs against the NVMe domain; also a quick check of any BlockDevice.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "moat/libmoat.h"
#include "cliutil/cli.h"

#define QD 16u

struct demo {
    const char *socket, *cap_name;
    uint64_t bytes;
    unsigned wait_s;
    uint32_t seed;
    struct moat_client *c;
    struct moat_cap *cap;
    struct moat_session *s;
    struct moat_blk_geometry geo;
    uint32_t chunk;             /* blocks per request */
};

/* The pattern of block lba: every 8 bytes name the block, the offset and
 * this run's seed, so stale data from an earlier run never verifies. */
static void fill(uint8_t *p, uint64_t lba, uint32_t blocks, uint32_t bs, uint32_t seed)
{
    for (uint64_t b = 0; b < blocks; b++)
        for (uint32_t o = 0; o < bs; o += 8) {
            uint64_t v = ((lba + b) << 20 | o) ^ ((uint64_t)seed << 40) ^ 0x9e3779b97f4a7c15ull;
            memcpy(p + b * bs + o, &v, 8);
        }
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: moat-blkdemo [options] [CAP]\n"
            "Write a pattern over a BlockDevice cap (default nvme0.blk0), flush, read it\n"
            "back, verify every byte, and print MB/s for each phase.\n\n"
            "  -s, --socket PATH   moat's control socket (default: $MOAT_SOCKET, else\n"
            "                      $XDG_RUNTIME_DIR/moat.sock, else /tmp/moat-$UID/moat.sock)\n"
            "  -b, --bytes SIZE    how much to write, with K/M/G (default 32M, at most the device)\n"
            "  -w, --wait SECONDS  wait this long for moat and the cap to come up (default 0)\n"
            "  -h, --help          this text\n\n"
            "Exit status: 0 verified, 1 a mismatch or an I/O error, 2 usage or no moat/cap.\n");
}

static int open_cap(struct demo *d)
{
    int rc = moat_open_wait(d->socket, d->cap_name, MOAT_RIGHT_READ | MOAT_RIGHT_WRITE,
                            d->wait_s, &d->c, &d->cap);
    if (rc) {
        fprintf(stderr, "moat-blkdemo: cannot open %s: %s (is moat running with that cap? "
                "try moatctl list)\n", d->cap_name, moat_strerror(rc));
        return rc;
    }
    moat_blk_geometry(d->cap, &d->geo);
    struct moat_session_params p = { .entries = 64, .data_size = 0 };
    rc = moat_session_open(d->cap, &p, &d->s);
    if (rc)
        fprintf(stderr, "moat-blkdemo: cannot open a session on %s: %s\n", d->cap_name,
                moat_strerror(rc));
    return rc;
}

/* Stream op over [0, blocks) with QD requests in flight; verify reads. */
static int stream(struct demo *d, uint16_t op, uint64_t blocks, uint64_t *bad)
{
    uint32_t bs = d->geo.block_size, chunk = d->chunk;
    uint8_t *bufs = malloc((size_t)QD * chunk * bs);
    uint64_t lbas[QD];
    uint32_t lens[QD], free_slots[QD], n_free = QD;
    if (!bufs)
        return -MOAT_ENOMEM;
    for (uint32_t i = 0; i < QD; i++)
        free_slots[i] = QD - 1 - i;
    uint64_t next = 0, done = 0, last_pct = 0;
    int rc = 0;
    while (done < blocks && rc == 0) {
        while (n_free && next < blocks) {
            uint32_t slot = free_slots[--n_free];
            uint32_t n = blocks - next < chunk ? (uint32_t)(blocks - next) : chunk;
            uint8_t *buf = bufs + (size_t)slot * chunk * bs;
            if (op == MOAT_BLK_WRITE)
                fill(buf, next, n, bs, d->seed);
            struct moat_blk_req r = { .op = op, .lba = next, .blocks = n, .buf = buf,
                                      .user_data = slot };
            int q = moat_blk_submit(d->s, &r, 1);
            if (q != 1) {
                n_free++;
                if (q < 0)
                    rc = q;
                break;
            }
            lbas[slot] = next;
            lens[slot] = n;
            next += n;
        }
        struct moat_completion cq[QD];
        int got = rc ? 0 : moat_wait(d->s, cq, QD, 10000);
        if (got < 0)
            rc = got;
        for (int i = 0; i < got; i++) {
            uint32_t slot = (uint32_t)cq[i].user_data;
            if (cq[i].status && !rc)
                rc = cq[i].status;
            if (op == MOAT_BLK_READ && !cq[i].status) {
                uint8_t *want = malloc((size_t)lens[slot] * bs);
                if (want) {
                    fill(want, lbas[slot], lens[slot], bs, d->seed);
                    for (uint32_t b = 0; b < lens[slot]; b++)
                        if (memcmp(want + (size_t)b * bs, bufs + ((size_t)slot * chunk + b) * bs, bs)) {
                            if (*bad < 5)
                                fprintf(stderr, "moat-blkdemo: block %" PRIu64 " reads back wrong\n",
                                        lbas[slot] + b);
                            ++*bad;
                        }
                    free(want);
                }
            }
            done += lens[slot];
            free_slots[n_free++] = slot;
        }
        uint64_t pct = done * 100 / blocks;
        if (pct / 25 != last_pct / 25 && pct < 100) {
            printf("  %3" PRIu64 "%%\n", pct);
            fflush(stdout);
        }
        last_pct = pct;
    }
    free(bufs);
    return rc;
}

static int phase(struct demo *d, const char *name, uint16_t op, uint64_t blocks, uint64_t *bad)
{
    printf("%s %" PRIu64 " MiB ...\n", name, blocks * d->geo.block_size >> 20);
    fflush(stdout);
    uint64_t t0 = cli_now_ns();
    int rc = stream(d, op, blocks, bad);
    if (rc == 0 && op == MOAT_BLK_WRITE)
        rc = moat_blk_flush(d->s);
    double s = (double)(cli_now_ns() - t0) / 1e9;
    if (rc) {
        fprintf(stderr, "moat-blkdemo: %s failed: %s\n", name, moat_strerror(rc));
        return rc;
    }
    printf("%-6s %8.1f MB/s  (%" PRIu64 " bytes in %.3f s%s)\n", name,
           (double)(blocks * d->geo.block_size) / 1e6 / s, blocks * d->geo.block_size, s,
           op == MOAT_BLK_WRITE ? ", flush included" : "");
    return 0;
}

int main(int argc, char **argv)
{
    struct demo d = { .cap_name = "nvme0.blk0", .bytes = 32ull << 20 };
    static const struct option opts[] = {
        { "socket", required_argument, NULL, 's' }, { "bytes", required_argument, NULL, 'b' },
        { "wait", required_argument, NULL, 'w' },   { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int o;
    while ((o = getopt_long(argc, argv, "s:b:w:h", opts, NULL)) != -1) {
        char *end;
        switch (o) {
        case 's': d.socket = optarg; break;
        case 'b':
            errno = 0;
            d.bytes = strtoull(optarg, &end, 0);
            if (*end == 'K' || *end == 'k') d.bytes <<= 10, end++;
            else if (*end == 'M' || *end == 'm') d.bytes <<= 20, end++;
            else if (*end == 'G' || *end == 'g') d.bytes <<= 30, end++;
            if (errno || *end || d.bytes == 0) {
                fprintf(stderr, "moat-blkdemo: --bytes %s: give a size like 32M\n", optarg);
                return 2;
            }
            break;
        case 'w': d.wait_s = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc)
        d.cap_name = argv[optind++];
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    d.seed = (uint32_t)(cli_now_ns() ^ (uint64_t)getpid());
    if (open_cap(&d)) {
        if (d.c)
            moat_disconnect(d.c);
        return 2;
    }
    uint64_t blocks = d.bytes / d.geo.block_size;
    if (blocks > d.geo.blocks)
        blocks = d.geo.blocks;
    d.chunk = moat_session_max_blocks(d.s);
    printf("%s: %" PRIu64 " blocks of %u bytes (%" PRIu64 " MiB), up to %u blocks per request, "
           "%u in flight\n", d.cap_name, d.geo.blocks, d.geo.block_size,
           d.geo.blocks * d.geo.block_size >> 20, d.chunk, QD);
    uint64_t bad = 0;
    int rc = phase(&d, "write", MOAT_BLK_WRITE, blocks, &bad);
    if (!rc)
        rc = phase(&d, "read", MOAT_BLK_READ, blocks, &bad);
    if (!rc && bad == 0)
        printf("verified: every byte read back as written\n");
    else if (!rc)
        printf("MISMATCH: %" PRIu64 " blocks read back wrong\n", bad);
    moat_disconnect(d.c);
    return rc || bad ? 1 : 0;
}
