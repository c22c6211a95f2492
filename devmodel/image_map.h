/*
 * image_map.h — read a backing image through a shared read-only mapping.
 *
 * A device model reads its image with one memcpy from the page cache
 * instead of a pread(2) per command: no system call, no file lookup. The
 * mapping shares the page cache with the fd, so pwrite(2), fallocate(2)
 * and fdatasync(2) on the same fd stay the way to change the image and
 * reads see their effect at once.
 *
 * Hostile file: if the image shrinks under moat (another process truncates
 * it), touching the lost range raises SIGBUS. image_map_readv catches that
 * on the calling thread and returns false, so the model reports a media
 * error instead of the VMM dying. A SIGBUS anywhere else goes to the
 * handler that was installed before ours (or kills the process, as it
 * would have without us).
 *
 * Thread-safe: any number of threads may read one map at once.
 */
#ifndef MOAT_IMAGE_MAP_H
#define MOAT_IMAGE_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct image_map {
    const uint8_t *base;        /* NULL: not mapped, use pread */
    uint64_t size;
};

/* Map the first size bytes of fd (opened for reading). False (m->base
 * NULL) when the mapping fails; the caller then reads with pread. */
bool image_map_open(struct image_map *m, int fd, uint64_t size);
void image_map_close(struct image_map *m);

/* Copy the image from offset off into the n buffers of iov, in order.
 * False when the range is outside the mapping or the file no longer holds
 * it (SIGBUS caught; the buffers may then hold part of the data). */
bool image_map_readv(const struct image_map *m, const struct iovec *iov, unsigned n,
                     uint64_t off);

/* SIGBUSes caught by image_map_read since the process started. */
uint64_t image_map_faults(void);

#endif /* MOAT_IMAGE_MAP_H */
