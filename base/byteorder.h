/*
 * byteorder.h — little-endian loads and stores at any alignment, for
 * device registers, config space and structures a device model builds in
 * byte arrays (PCI, NVMe and virtio are little-endian; gVNIC's big-endian
 * fields have their own helpers in gvnic_internal.h). Header-only.
 */
#ifndef MOAT_BYTEORDER_H
#define MOAT_BYTEORDER_H

#include <stdint.h>

static inline uint16_t get_le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static inline uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)get_le16(p) | (uint32_t)get_le16(p + 2) << 16;
}

static inline void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
    put_le16(p, (uint16_t)v);
    put_le16(p + 2, (uint16_t)(v >> 16));
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
    put_le32(p, (uint32_t)v);
    put_le32(p + 4, (uint32_t)(v >> 32));
}

#endif /* MOAT_BYTEORDER_H */
