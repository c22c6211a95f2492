/*
 * nvme_cmd.h — pure construction and interpretation of NVMe commands for
 * the driver: PRP entries for an IOVA-contiguous buffer, the SQEs it sends
 * (NVM I/O and admin), the IDENTIFY fields it uses, the transfer size it
 * can offer, and what an NVMe status means to a moat client. No device
 * access; the host unit tests run this file as is.
 *
 * Error policy: builders return false (and leave the SQE unusable) for
 * arguments the wire format cannot carry; nothing here panics. IDENTIFY
 * parsers copy fields only: the caller judges them.
 */
#ifndef NVME_CMD_H
#define NVME_CMD_H

#include <stdbool.h>
#include <stdint.h>
#include "moat/nvme_regs.h"

#define NVME_PRP_LIST_ENTRIES (NVME_PAGE_SIZE / 8u)    /* one list page, no chaining */
/* Largest transfer one PRP list page can describe, page-aligned buffer. */
#define NVME_XFER_MAX ((uint32_t)NVME_PRP_LIST_ENTRIES * NVME_PAGE_SIZE)
#define NVME_NLB_MAX 65536u     /* NLB is a 0-based 16-bit field */

/* Describe len bytes at IOVA buf (contiguous in IOVA, dword aligned, any
 * offset in its first page) with PRP1/PRP2: one page -> PRP2 = 0; two ->
 * PRP2 = the second page; more -> PRP2 = list_iova and list[] gets the
 * page addresses after the first (list_max entries at most, list_iova
 * qword aligned). Returns the number of memory pages the transfer touches,
 * or 0 when len is 0, buf is misaligned, buf + len wraps, or the list is
 * too small. */
uint32_t nvme_prp_build(uint64_t buf, uint64_t len, uint64_t *list, uint64_t list_iova,
                        uint32_t list_max, uint64_t *prp1, uint64_t *prp2);

/* NVM I/O commands for namespace nsid; nlb is a block count (1-based).
 * The CID is the caller's to set. False when nlb is 0 or > NVME_NLB_MAX. */
bool nvme_sqe_rw(struct nvme_sqe *e, uint8_t opc, uint32_t nsid, uint64_t slba, uint32_t nlb,
                 uint64_t prp1, uint64_t prp2);
void nvme_sqe_flush(struct nvme_sqe *e, uint32_t nsid);
bool nvme_sqe_write_zeroes(struct nvme_sqe *e, uint32_t nsid, uint64_t slba, uint32_t nlb);
/* DATASET MANAGEMENT, deallocate, one range: r (at IOVA r_iova) is filled
 * with slba/nlb (nlb 1-based, 0 refused). */
bool nvme_sqe_discard(struct nvme_sqe *e, uint32_t nsid, struct nvme_dsm_range *r,
                      uint64_t r_iova, uint64_t slba, uint32_t nlb);

/* Admin commands. Queue sizes are entry counts (1-based, 2..65536). */
void nvme_sqe_identify(struct nvme_sqe *e, uint32_t cns, uint32_t nsid, uint64_t page_iova);
void nvme_sqe_set_features(struct nvme_sqe *e, uint32_t fid, uint32_t value);
bool nvme_sqe_create_cq(struct nvme_sqe *e, uint16_t qid, uint32_t entries, uint64_t iova,
                        uint16_t vector);
bool nvme_sqe_create_sq(struct nvme_sqe *e, uint16_t qid, uint32_t entries, uint64_t iova,
                        uint16_t cqid);
/* DELETE I/O SQ (sq) or CQ qid. */
void nvme_sqe_delete_queue(struct nvme_sqe *e, bool sq, uint16_t qid);
void nvme_sqe_abort(struct nvme_sqe *e, uint16_t sqid, uint16_t cid);
void nvme_sqe_dbbuf(struct nvme_sqe *e, uint64_t shadow_iova, uint64_t eventidx_iova);

/* What the driver reads from IDENTIFY controller (CNS 01h). Strings are
 * NUL-terminated with trailing spaces removed; anything outside printable
 * ASCII becomes '?'. */
struct nvme_id_ctrl {
    uint16_t vid, oacs, oncs;
    uint8_t mdts, acl, vwc;
    uint32_t nn;
    char sn[21], mn[41], fr[9];
};
void nvme_parse_id_ctrl(const uint8_t *page, struct nvme_id_ctrl *out);

/* What the driver reads from IDENTIFY namespace (CNS 00h): the format in
 * use (FLBAS 3:0) and its LBA format entry. fmt_valid is false when FLBAS
 * names a format beyond NLBAF. */
struct nvme_id_ns {
    uint64_t nsze;
    uint8_t nlbaf, fmt;
    bool fmt_valid;
    bool write_protected;       /* NSATTR bit 0 */
    uint32_t lbads;             /* log2 of the LBA size */
    uint32_t ms;                /* metadata bytes per LBA */
};
void nvme_parse_id_ns(const uint8_t *page, struct nvme_id_ns *out);

/* Largest transfer the driver offers: want_bytes, capped by MDTS (2^mdts
 * pages of 4 KiB, 0 = no limit), by NVME_XFER_MAX and by NVME_NLB_MAX
 * blocks, rounded down to whole blocks of block_size (a power of two).
 * 0 when not even one block fits. */
uint32_t nvme_max_transfer(uint64_t want_bytes, uint8_t mdts, uint32_t block_size);

/* The moat status (enum moat_status) a client sees for NVMe status sc
 * (SCT|SC, as NVME_CQE_STATUS gives it). */
uint32_t nvme_status_to_moat(uint16_t sc);
/* A short name of sc for logs ("LBA out of range"), or "unknown status". */
const char *nvme_status_name(uint16_t sc);

#endif /* NVME_CMD_H */
