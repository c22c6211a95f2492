/*
 * bare_bench.h — how the bare-mode benchmarks start (QEMU under TCG, no
 * KVM): the PART.json argument, QEMU or SKIPPED (an empty part written),
 * and a fresh image file for the NVMe controller. Header-only.
 */
#ifndef MOAT_BARE_BENCH_H
#define MOAT_BARE_BENCH_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "qemu_console.h"
#include "report.h"

/* The QEMU binary, or NULL when the benchmark should end with *rc (bad
 * usage: 2; SKIPPED: 0 once the empty part is written). */
static inline const char *bare_bench_start(int argc, char **argv, const char *img,
                                           off_t img_bytes, int *rc)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PART.json\n", argv[0]);
        *rc = 2;
        return NULL;
    }
    char err[256];
    const char *qemu = qc_qemu_path(err, sizeof err);
    if (!qemu) {
        fprintf(stderr, "%s: SKIPPED: %s\n", argv[0], err);
        *rc = bench_write(argv[1], NULL, 0) ? 0 : 1;
        return NULL;
    }
    int fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, img_bytes) != 0)
        bench_die(argv[0], img, strerror(errno));
    close(fd);
    return qemu;
}

#endif /* MOAT_BARE_BENCH_H */
