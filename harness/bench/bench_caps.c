/*
 * bench_caps — a BlockDevice cap session (libmoat <-> ramblk under KVM,
 * through moat's control socket): 4 KiB reads one at a time (QD1, every
 * request a round trip with kicks when a side sleeps) against batches of
 * 32 (QD32), side by side in one run; plus kicks per request for both,
 * which is what notification suppression saves.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "control.h"
#include "log.h"
#include "moat/libmoat.h"
#include "report.h"
#include "supervisor.h"

#define QD1_N  20000u
#define QD32_N 200000u
#define BATCH  32u

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "bench_caps: %s: %s\n", what, moat_strerror(rc));
    return 1;
}

int main(int argc, char **argv)
{
    static struct moat_config cfg;
    static struct supervisor sup;
    static struct control ctl;
    if (!bench_start(argc, argv, &cfg))
        return 2;
    char spec[512], err[512];
    snprintf(spec, sizeof spec, "name=ram0 kernel=%s/guest/ramblk.elf mem=32M args=\"size=16M\"",
             MOAT_BUILD_DIR);
    struct domain_config dc;
    if (!config_parse_domain(spec, &dc, err, sizeof err) || !supervisor_init(&sup, &cfg, err, sizeof err) ||
        !control_start(&ctl, &sup, "/tmp/moat-bench-logs/ctl.sock", err, sizeof err)) {
        fprintf(stderr, "bench_caps: %s\n", err);
        return 1;
    }
    struct domain *d = supervisor_add(&sup, &dc, err, sizeof err);
    if (!d || !domain_start(d, err, sizeof err) ||
        !supervisor_wait(&sup, d, DOMAIN_STATE_BIT(DOMAIN_READY), 10000)) {
        fprintf(stderr, "bench_caps: ramblk did not start: %s\n", err);
        return 1;
    }
    struct moat_client *c;
    struct moat_cap *cap;
    struct moat_session *s;
    int rc = moat_connect("/tmp/moat-bench-logs/ctl.sock", &c);
    if (rc || (rc = moat_open(c, "ram0.blk0", MOAT_RIGHT_READ, &cap)) ||
        (rc = moat_session_open(cap, &(struct moat_session_params){ .entries = 64 }, &s)))
        return fail("session", rc);
    static char buf[BATCH][4096];
    struct moat_session_stats st0, st1, st2;
    moat_session_stats(s, &st0);
    double t0 = now_us();
    for (uint32_t i = 0; i < QD1_N; i++)
        if ((rc = moat_blk_read(s, (i * 8u) % 32768u, 8, buf[0])) != 0)
            return fail("QD1 read", rc);
    double qd1 = (now_us() - t0) / QD1_N;
    moat_session_stats(s, &st1);
    struct moat_blk_req r[BATCH];
    struct moat_completion cpl[BATCH];
    t0 = now_us();
    for (uint32_t done = 0; done < QD32_N; done += BATCH) {
        for (uint32_t k = 0; k < BATCH; k++)
            r[k] = (struct moat_blk_req){ .op = MOAT_BLK_READ, .lba = ((done + k) * 8u) % 32768u,
                                          .blocks = 8, .buf = buf[k], .user_data = k };
        if ((rc = moat_blk_submit(s, r, BATCH)) != (int)BATCH)
            return fail("QD32 submit", rc < 0 ? rc : -MOAT_EBUSY);
        for (uint32_t got = 0; got < BATCH;) {
            int m = moat_wait(s, cpl, BATCH, 10000);
            if (m <= 0)
                return fail("QD32 wait", m);
            got += (uint32_t)m;
        }
    }
    double qd32 = (now_us() - t0) / QD32_N;
    moat_session_stats(s, &st2);
    double kicks1 = (double)(st1.kicks_sent - st0.kicks_sent) / QD1_N;
    double kicks32 = (double)(st2.kicks_sent - st1.kicks_sent) / QD32_N;
    fprintf(stderr, "bench_caps: 4 KiB read %.2f us at QD1, %.2f us per request at QD32; "
            "%.3f / %.3f kicks per request\n", qd1, qd32, kicks1, kicks32);
    moat_session_close(s);
    moat_close(cap);
    moat_disconnect(c);
    control_stop(&ctl);
    supervisor_fini(&sup);
    struct bench_record rec[] = {
        { "cap_session_4K_read_per_request_qd32", qd32, "us", "cap_session_4K_read_qd1", qd1 },
        { "cap_session_kicks_per_request_qd32", kicks32, "kicks", "cap_session_kicks_per_request_qd1", kicks1 },
    };
    return bench_write(argv[1], rec, sizeof rec / sizeof rec[0]) ? 0 : 1;
}
