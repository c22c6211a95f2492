/*
 * fuzz_input.h — reading a libFuzzer input as a stream of typed values
 * (the C counterpart of LLVM's FuzzedDataProvider). Reads past the end
 * give zeros, so every target consumes any input without a bounds case of
 * its own. Header-only; used by harness/fuzz/fuzz_*.c.
 */
#ifndef MOAT_FUZZ_INPUT_H
#define MOAT_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
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

#endif /* MOAT_FUZZ_INPUT_H */
