/*
 * fuzz_input.h — reading a libFuzzer input as a stream of typed values
 * (the C counterpart of LLVM's FuzzedDataProvider). Reads past the end
 * give zeros, so every target consumes any input without a bounds case of
 * its own; and how a target reports a broken invariant (FZ_CHECK,
 * FZ_FAIL: file, line and why on stderr, then abort, which libFuzzer
 * reports as a crash and saves the input). Header-only; used by
 * harness/fuzz/fuzz_*.c.
 */
#ifndef MOAT_FUZZ_INPUT_H
#define MOAT_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fz {
    const uint8_t *p;
    size_t n;
};

static inline struct fz fz_init(const uint8_t *data, size_t size)
{
    return (struct fz){ .p = data, .n = size };
}

static inline size_t fz_left(const struct fz *f) { return f->n; }

/* Copy len bytes into dst; whatever the input lacks is zero. Returns how
 * many bytes came from the input. */
static inline size_t fz_bytes(struct fz *f, void *dst, size_t len)
{
    size_t k = len < f->n ? len : f->n;
    if (k)
        memcpy(dst, f->p, k);
    if (k < len)
        memset((uint8_t *)dst + k, 0, len - k);
    f->p += k;
    f->n -= k;
    return k;
}

static inline uint8_t fz_u8(struct fz *f)
{
    uint8_t v;
    fz_bytes(f, &v, 1);
    return v;
}

static inline uint16_t fz_u16(struct fz *f)
{
    uint16_t v;
    fz_bytes(f, &v, sizeof v);
    return v;
}

static inline uint32_t fz_u32(struct fz *f)
{
    uint32_t v;
    fz_bytes(f, &v, sizeof v);
    return v;
}

static inline uint64_t fz_u64(struct fz *f)
{
    uint64_t v;
    fz_bytes(f, &v, sizeof v);
    return v;
}

/* A value in [0, n) (n > 0). */
static inline uint32_t fz_below(struct fz *f, uint32_t n)
{
    return n ? fz_u32(f) % n : 0;
}

/* A broken invariant: "FILE:LINE: invariant violated: WHY", then abort. */
#define FZ_FAIL(...)                                                              \
    do {                                                                          \
        fprintf(stderr, "%s:%d: invariant violated: ", __FILE__, __LINE__);       \
        fprintf(stderr, __VA_ARGS__);                                             \
        fputc('\n', stderr);                                                      \
        abort();                                                                  \
    } while (0)
#define FZ_CHECK(cond)                                                            \
    do {                                                                          \
        if (!(cond))                                                              \
            FZ_FAIL("%s", #cond);                                                 \
    } while (0)

#endif /* MOAT_FUZZ_INPUT_H */
