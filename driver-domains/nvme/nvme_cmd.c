/* Pure NVMe command construction and status interpretation (contract in
 * nvme_cmd.h). Citations are to the NVM Express Base Specification 1.4. */
#include "nvme_cmd.h"
/* Relative so the host unit test compiles this file unchanged. */
#include "dd.h"

#define PAGE NVME_PAGE_SIZE
#define PAGE_MASK ((uint64_t)NVME_PAGE_SIZE - 1u)

uint32_t nvme_prp_build(uint64_t buf, uint64_t len, uint64_t *list, uint64_t list_iova,
                        uint32_t list_max, uint64_t *prp1, uint64_t *prp2)
{
    /* §4.3: PRP1 may carry an offset (dword aligned); every later entry
     * is a page base. */
    if (len == 0 || (buf & 3u) || len > UINT64_MAX - buf)
        return 0;
    uint64_t first = buf & ~PAGE_MASK;
    uint64_t span = (buf & PAGE_MASK) + len;
    if (span < len)
        return 0;
    uint64_t pages = span / PAGE + ((span & PAGE_MASK) != 0);
    if (pages > UINT32_MAX)
        return 0;
    *prp1 = buf;
    if (pages == 1) {
        *prp2 = 0;
    } else if (pages == 2) {
        *prp2 = first + PAGE;
    } else {
        /* §4.3: PRP2 points to a list of the remaining pages; a list entry
         * that is the last of its page would chain: we never need that
         * because list_max is at most one page of entries. */
        if (!list || (list_iova & 7u) || pages - 1 > list_max)
            return 0;
        for (uint64_t i = 1; i < pages; i++)
            list[i - 1] = first + i * PAGE;
        *prp2 = list_iova;
    }
    return (uint32_t)pages;
}

static void sqe_init(struct nvme_sqe *e, uint8_t opc, uint32_t nsid)
{
    memset(e, 0, sizeof *e);
    e->opc = opc;
    e->nsid = nsid;
}

static void set_slba(struct nvme_sqe *e, uint64_t slba)
{
    e->cdw10 = (uint32_t)slba;
    e->cdw11 = (uint32_t)(slba >> 32);
}

bool nvme_sqe_rw(struct nvme_sqe *e, uint8_t opc, uint32_t nsid, uint64_t slba, uint32_t nlb,
                 uint64_t prp1, uint64_t prp2)
{
    sqe_init(e, opc, nsid);
    if (nlb == 0 || nlb > NVME_NLB_MAX)
        return false;
    e->prp1 = prp1;
    e->prp2 = prp2;
    set_slba(e, slba);
    e->cdw12 = nlb - 1u;        /* NLB 15:0, 0-based; no FUA, no PRINFO */
    return true;
}

void nvme_sqe_flush(struct nvme_sqe *e, uint32_t nsid) { sqe_init(e, NVME_IO_FLUSH, nsid); }

bool nvme_sqe_write_zeroes(struct nvme_sqe *e, uint32_t nsid, uint64_t slba, uint32_t nlb)
{
    sqe_init(e, NVME_IO_WRITE_ZEROES, nsid);
    if (nlb == 0 || nlb > NVME_NLB_MAX)
        return false;
    set_slba(e, slba);
    e->cdw12 = nlb - 1u;
    return true;
}

bool nvme_sqe_discard(struct nvme_sqe *e, uint32_t nsid, struct nvme_dsm_range *r,
                      uint64_t r_iova, uint64_t slba, uint32_t nlb)
{
    sqe_init(e, NVME_IO_DSM, nsid);
    if (nlb == 0)
        return false;
    *r = (struct nvme_dsm_range){ .cattr = 0, .nlb = nlb, .slba = slba };
    e->prp1 = r_iova;           /* 16 bytes: never crosses a page when aligned */
    e->cdw10 = 0;               /* NR: one range, 0-based */
    e->cdw11 = NVME_DSM_AD;
    return true;
}

void nvme_sqe_identify(struct nvme_sqe *e, uint32_t cns, uint32_t nsid, uint64_t page_iova)
{
    sqe_init(e, NVME_ADM_IDENTIFY, nsid);
    e->prp1 = page_iova;        /* page aligned: 4096 bytes, PRP2 unused */
    e->cdw10 = cns;
}

void nvme_sqe_set_features(struct nvme_sqe *e, uint32_t fid, uint32_t value)
{
    sqe_init(e, NVME_ADM_SET_FEATURES, 0);
    e->cdw10 = fid;             /* SV = 0: not saved across power cycles */
    e->cdw11 = value;
}

bool nvme_sqe_create_cq(struct nvme_sqe *e, uint16_t qid, uint32_t entries, uint64_t iova,
                        uint16_t vector)
{
    sqe_init(e, NVME_ADM_CREATE_CQ, 0);
    if (qid == 0 || entries < 2 || entries > 65536u || (iova & PAGE_MASK))
        return false;
    e->prp1 = iova;
    e->cdw10 = qid | (entries - 1u) << 16;
    e->cdw11 = NVME_QUEUE_PC | NVME_CQ_IEN | (uint32_t)vector << 16;
    return true;
}

bool nvme_sqe_create_sq(struct nvme_sqe *e, uint16_t qid, uint32_t entries, uint64_t iova,
                        uint16_t cqid)
{
    sqe_init(e, NVME_ADM_CREATE_SQ, 0);
    if (qid == 0 || cqid == 0 || entries < 2 || entries > 65536u || (iova & PAGE_MASK))
        return false;
    e->prp1 = iova;
    e->cdw10 = qid | (entries - 1u) << 16;
    e->cdw11 = NVME_QUEUE_PC | (uint32_t)cqid << 16;   /* QPRIO 0: round robin */
    return true;
}

void nvme_sqe_delete_queue(struct nvme_sqe *e, bool sq, uint16_t qid)
{
    sqe_init(e, sq ? NVME_ADM_DELETE_SQ : NVME_ADM_DELETE_CQ, 0);
    e->cdw10 = qid;
}

void nvme_sqe_abort(struct nvme_sqe *e, uint16_t sqid, uint16_t cid)
{
    sqe_init(e, NVME_ADM_ABORT, 0);
    e->cdw10 = sqid | (uint32_t)cid << 16;
}

void nvme_sqe_dbbuf(struct nvme_sqe *e, uint64_t shadow_iova, uint64_t eventidx_iova)
{
    sqe_init(e, NVME_ADM_DBBUF_CONFIG, 0);
    e->prp1 = shadow_iova;
    e->prp2 = eventidx_iova;
}

static uint16_t rd16(const uint8_t *p, unsigned off)
{
    uint16_t v;
    memcpy(&v, p + off, sizeof v);
    return v;
}
static uint32_t rd32(const uint8_t *p, unsigned off)
{
    uint32_t v;
    memcpy(&v, p + off, sizeof v);
    return v;
}
static uint64_t rd64(const uint8_t *p, unsigned off)
{
    uint64_t v;
    memcpy(&v, p + off, sizeof v);
    return v;
}

static void ascii(char *out, const uint8_t *in, unsigned n)
{
    unsigned len = 0;
    for (unsigned i = 0; i < n; i++) {
        out[i] = in[i] >= 0x20 && in[i] < 0x7f ? (char)in[i] : '?';
        if (in[i] != ' ' && in[i] != 0)
            len = i + 1;
    }
    out[len] = '\0';
}

void nvme_parse_id_ctrl(const uint8_t *page, struct nvme_id_ctrl *out)
{
    *out = (struct nvme_id_ctrl){
        .vid = rd16(page, NVME_IDC_VID),
        .oacs = rd16(page, NVME_IDC_OACS),
        .oncs = rd16(page, NVME_IDC_ONCS),
        .mdts = page[NVME_IDC_MDTS],
        .acl = page[NVME_IDC_ACL],
        .vwc = page[NVME_IDC_VWC],
        .nn = rd32(page, NVME_IDC_NN),
    };
    ascii(out->sn, page + NVME_IDC_SN, 20);
    ascii(out->mn, page + NVME_IDC_MN, 40);
    ascii(out->fr, page + NVME_IDC_FR, 8);
}

void nvme_parse_id_ns(const uint8_t *page, struct nvme_id_ns *out)
{
    *out = (struct nvme_id_ns){
        .nsze = rd64(page, NVME_IDNS_NSZE),
        .nlbaf = page[NVME_IDNS_NLBAF],
        .fmt = page[NVME_IDNS_FLBAS] & 0xFu,
        .write_protected = (page[NVME_IDNS_NSATTR] & NVME_NSATTR_WP) != 0,
    };
    /* NLBAF is 0-based; at most 16 formats fit the structure. */
    out->fmt_valid = out->fmt <= out->nlbaf;
    uint32_t f = rd32(page, NVME_IDNS_LBAF0 + 4u * out->fmt);
    out->lbads = NVME_LBAF_LBADS(f);
    out->ms = NVME_LBAF_MS(f);
}

uint32_t nvme_max_transfer(uint64_t want_bytes, uint8_t mdts, uint32_t block_size)
{
    if (block_size == 0 || (block_size & (block_size - 1u)))
        return 0;
    uint64_t max = want_bytes;
    /* §5.15.2.1 MDTS: in units of the minimum page size (CAP.MPSMIN = 0:
     * 4 KiB); shifts past the cap below are no limit at all. */
    if (mdts && mdts < 20 && ((uint64_t)PAGE << mdts) < max)
        max = (uint64_t)PAGE << mdts;
    if (max > NVME_XFER_MAX)
        max = NVME_XFER_MAX;
    if (max > (uint64_t)NVME_NLB_MAX * block_size)
        max = (uint64_t)NVME_NLB_MAX * block_size;
    max -= max % block_size;
    return (uint32_t)max;
}

uint32_t nvme_status_to_moat(uint16_t sc)
{
    switch (sc) {
    case NVME_SC_SUCCESS:
        return MOAT_ST_OK;
    case NVME_SC_LBA_RANGE:
        return MOAT_ST_ERANGE;
    case NVME_SC_INVALID_OPCODE:
    case NVME_SC_INVALID_FIELD:
    case NVME_SC_INVALID_PRP_OFFSET:
        return MOAT_ST_EINVAL;
    case NVME_SC_NS_WRITE_PROTECTED:
    case NVME_SC_READ_ONLY_RANGE:
        return MOAT_ST_EROFS;
    default:
        return MOAT_ST_EIO;
    }
}

static const struct {
    uint16_t sc;
    const char *name;
} names[] = {
    { NVME_SC_SUCCESS, "success" },
    { NVME_SC_INVALID_OPCODE, "invalid opcode" },
    { NVME_SC_INVALID_FIELD, "invalid field" },
    { NVME_SC_CID_CONFLICT, "command ID conflict" },
    { NVME_SC_DATA_XFER_ERROR, "data transfer error" },
    { NVME_SC_INTERNAL, "internal error" },
    { NVME_SC_ABORT_REQ, "aborted by request" },
    { NVME_SC_ABORT_SQ_DELETED, "aborted: SQ deleted" },
    { NVME_SC_INVALID_NS, "invalid namespace" },
    { NVME_SC_CMD_SEQ_ERROR, "command sequence error" },
    { NVME_SC_INVALID_PRP_OFFSET, "invalid PRP offset" },
    { NVME_SC_NS_WRITE_PROTECTED, "namespace write protected" },
    { NVME_SC_LBA_RANGE, "LBA out of range" },
    { NVME_SC_CAP_EXCEEDED, "capacity exceeded" },
    { NVME_SC_CQ_INVALID, "invalid CQ" },
    { NVME_SC_QID_INVALID, "invalid queue ID" },
    { NVME_SC_QUEUE_SIZE, "invalid queue size" },
    { NVME_SC_ABORT_LIMIT, "abort limit exceeded" },
    { NVME_SC_AER_LIMIT, "async event limit exceeded" },
    { NVME_SC_INVALID_VECTOR, "invalid interrupt vector" },
    { NVME_SC_INVALID_LOG_PAGE, "invalid log page" },
    { NVME_SC_INVALID_DELETE, "invalid queue deletion" },
    { NVME_SC_FEAT_NOT_SAVEABLE, "feature not saveable" },
    { NVME_SC_READ_ONLY_RANGE, "write to read-only range" },
    { NVME_SC_WRITE_FAULT, "write fault" },
    { NVME_SC_READ_ERROR, "unrecovered read error" },
};

const char *nvme_status_name(uint16_t sc)
{
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].sc == sc)
            return names[i].name;
    return "unknown status";
}
