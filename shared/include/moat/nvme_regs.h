/*
 * moat/nvme_regs.h — the NVMe 1.4 wire subset moat's controller model
 * (devmodel/nvme) and NVMe driver (driver-domains/nvme) share: controller
 * registers, submission/completion entries, the admin and NVM opcodes,
 * features, status codes and the IDENTIFY fields both sides read. Facts
 * from the NVM Express Base Specification 1.4; only what moat uses.
 *
 * Layout rules: little-endian; an SQE is 64 bytes, a CQE 16 bytes; queue
 * memory and PRP entries use the memory page size CC.MPS selects (moat:
 * 4 KiB only, CAP.MPSMIN = CAP.MPSMAX = 0).
 */
#ifndef MOAT_NVME_REGS_H
#define MOAT_NVME_REGS_H

#include <stdint.h>

/* ---- PCI identity ---------------------------------------------------------- */
#define NVME_PCI_CLASS      0x010802u   /* mass storage, NVM, NVMe I/O controller */
/* moat's controller model: the placeholder vendor ID of moat's test devices
 * (not a PCI-SIG assignment) and its own device ID. A driver binds by class. */
#define NVME_MOAT_VENDOR    0x1234u
#define NVME_MOAT_DEVICE    0x4e56u     /* "NV" */

/* ---- controller registers (BAR0) ------------------------------------------ */
#define NVME_REG_CAP    0x00u   /* 64: capabilities */
#define NVME_REG_VS     0x08u   /* 32: version */
#define NVME_REG_INTMS  0x0Cu   /* 32: interrupt mask set (pin/MSI only) */
#define NVME_REG_INTMC  0x10u   /* 32: interrupt mask clear */
#define NVME_REG_CC     0x14u   /* 32: controller configuration */
#define NVME_REG_CSTS   0x1Cu   /* 32: controller status */
#define NVME_REG_NSSR   0x20u   /* 32: NVM subsystem reset */
#define NVME_REG_AQA    0x24u   /* 32: admin queue attributes */
#define NVME_REG_ASQ    0x28u   /* 64: admin SQ base */
#define NVME_REG_ACQ    0x30u   /* 64: admin CQ base */
#define NVME_REG_DBS    0x1000u /* doorbells start here */

/* Doorbell of queue qid with stride CAP.DSTRD: SQ tail, then CQ head. */
#define NVME_SQ_TDBL(qid, dstrd) (NVME_REG_DBS + (2u * (qid)) * (4u << (dstrd)))
#define NVME_CQ_HDBL(qid, dstrd) (NVME_REG_DBS + (2u * (qid) + 1u) * (4u << (dstrd)))

/* CAP */
#define NVME_CAP_MQES(c)    ((uint32_t)((c) & 0xFFFFu))         /* 0-based */
#define NVME_CAP_CQR        (1ull << 16)                        /* contiguous queues required */
#define NVME_CAP_TO(c)      ((uint32_t)(((c) >> 24) & 0xFFu))   /* 500 ms units */
#define NVME_CAP_DSTRD(c)   ((uint32_t)(((c) >> 32) & 0xFu))
#define NVME_CAP_CSS_NVM    (1ull << 37)
#define NVME_CAP_MPSMIN(c)  ((uint32_t)(((c) >> 48) & 0xFu))    /* 2^(12+n) */
#define NVME_CAP_MPSMAX(c)  ((uint32_t)(((c) >> 52) & 0xFu))
#define NVME_CAP_MAKE(mqes, to, dstrd) \
    ((uint64_t)(mqes) | NVME_CAP_CQR | ((uint64_t)(to) << 24) | ((uint64_t)(dstrd) << 32) | \
     NVME_CAP_CSS_NVM)

#define NVME_VS_1_4     0x00010400u

/* CC */
#define NVME_CC_EN          (1u << 0)
#define NVME_CC_CSS(c)      (((c) >> 4) & 0x7u)     /* 0 = NVM command set */
#define NVME_CC_MPS(c)      (((c) >> 7) & 0xFu)     /* page = 2^(12+MPS) */
#define NVME_CC_AMS(c)      (((c) >> 11) & 0x7u)    /* 0 = round robin */
#define NVME_CC_SHN(c)      (((c) >> 14) & 0x3u)    /* 1 normal, 2 abrupt shutdown */
#define NVME_CC_SHN_NORMAL  (1u << 14)
#define NVME_CC_SHN_MASK    (3u << 14)
#define NVME_CC_IOSQES(c)   (((c) >> 16) & 0xFu)    /* 2^n bytes: must be 6 */
#define NVME_CC_IOCQES(c)   (((c) >> 20) & 0xFu)    /* must be 4 */
#define NVME_CC_MAKE(mps, iosqes, iocqes) \
    (((uint32_t)(mps) << 7) | ((uint32_t)(iosqes) << 16) | ((uint32_t)(iocqes) << 20))

/* CSTS */
#define NVME_CSTS_RDY       (1u << 0)
#define NVME_CSTS_CFS       (1u << 1)   /* controller fatal status */
#define NVME_CSTS_SHST_MASK (3u << 2)
#define NVME_CSTS_SHST_DONE (2u << 2)   /* shutdown processing complete */

/* AQA: 0-based sizes, 12 bits each */
#define NVME_AQA_ASQS(a)    ((a) & 0xFFFu)
#define NVME_AQA_ACQS(a)    (((a) >> 16) & 0xFFFu)
#define NVME_AQA_MAKE(sq, cq) ((((uint32_t)(cq) - 1u) << 16) | ((uint32_t)(sq) - 1u))

#define NVME_ADMIN_QUEUE_MIN 2u         /* entries */
#define NVME_ADMIN_QUEUE_MAX 4096u
#define NVME_PAGE_SIZE       4096u

/* ---- submission queue entry ---------------------------------------------- */
struct nvme_sqe {
    uint8_t opc;
    uint8_t flags;              /* FUSE 1:0, PSDT 7:6 (0 = PRPs) */
    uint16_t cid;
    uint32_t nsid;
    uint32_t cdw2, cdw3;
    uint64_t mptr;
    uint64_t prp1, prp2;
    uint32_t cdw10, cdw11, cdw12, cdw13, cdw14, cdw15;
};
_Static_assert(sizeof(struct nvme_sqe) == 64, "NVMe SQE is 64 bytes");

#define NVME_SQE_FUSE_MASK  0x03u   /* flags 1:0: fused operation, 0 = normal */
#define NVME_SQE_PSDT_MASK  0xC0u   /* flags 7:6: 0 = PRPs, else SGLs */
#define NVME_NSID_ALL       0xFFFFFFFFu /* broadcast NSID (FLUSH, features) */

/* ---- completion queue entry ---------------------------------------------- */
struct nvme_cqe {
    uint32_t dw0;               /* command specific */
    uint32_t dw1;
    uint16_t sqhd;              /* SQ head pointer */
    uint16_t sqid;
    uint16_t cid;
    uint16_t status;            /* bit 0 phase, 15:1 status field */
};
_Static_assert(sizeof(struct nvme_cqe) == 16, "NVMe CQE is 16 bytes");

#define NVME_CQE_PHASE          1u
#define NVME_STATUS(sct, sc)    ((uint16_t)(((sct) << 8) | (sc)))   /* 11-bit SCT|SC */
#define NVME_CQE_STATUS(st)     ((uint16_t)(((st) >> 1) & 0x7FFu))  /* SCT|SC of a CQE */
#define NVME_CQE_DNR            (1u << 15)  /* do not retry (in cqe.status) */

/* ---- opcodes --------------------------------------------------------------- */
enum nvme_admin_opc {
    NVME_ADM_DELETE_SQ    = 0x00,
    NVME_ADM_CREATE_SQ    = 0x01,
    NVME_ADM_GET_LOG_PAGE = 0x02,
    NVME_ADM_DELETE_CQ    = 0x04,
    NVME_ADM_CREATE_CQ    = 0x05,
    NVME_ADM_IDENTIFY     = 0x06,
    NVME_ADM_ABORT        = 0x08,
    NVME_ADM_SET_FEATURES = 0x09,
    NVME_ADM_GET_FEATURES = 0x0A,
    NVME_ADM_ASYNC_EVENT  = 0x0C,
    NVME_ADM_DBBUF_CONFIG = 0x7C,
};

enum nvme_io_opc {
    NVME_IO_FLUSH        = 0x00,
    NVME_IO_WRITE        = 0x01,
    NVME_IO_READ         = 0x02,
    NVME_IO_WRITE_ZEROES = 0x08,
    NVME_IO_DSM          = 0x09,
};

/* CREATE I/O CQ: cdw10 = QID | (size-1) << 16; cdw11 = PC | IEN << 1 | IV << 16 */
/* CREATE I/O SQ: cdw10 = QID | (size-1) << 16; cdw11 = PC | CQID << 16 */
#define NVME_QUEUE_PC   (1u << 0)
#define NVME_CQ_IEN     (1u << 1)

/* IDENTIFY cdw10 CNS */
#define NVME_CNS_NAMESPACE   0x00u
#define NVME_CNS_CONTROLLER  0x01u
#define NVME_CNS_ACTIVE_NS   0x02u

/* Features (cdw10 FID; SET cdw11 = value, completion dw0 = result) */
#define NVME_FEAT_VOLATILE_WC    0x06u
#define NVME_FEAT_NUM_QUEUES     0x07u  /* NSQR 15:0, NCQR 31:16, 0-based */
#define NVME_FEAT_IRQ_COALESCE   0x08u  /* THR 7:0 (0-based), TIME 15:8 (100 us) */
#define NVME_FEAT_IRQ_CONFIG     0x09u  /* IV 15:0, CD (coalescing disable) bit 16 */
#define NVME_FEAT_IRQ_CONFIG_CD  (1u << 16)
#define NVME_FEAT_SV             (1u << 31) /* SET cdw10: save across power cycles */
#define NVME_FEAT_SEL(cdw10)     (((cdw10) >> 8) & 0x7u) /* GET: 0 current, 1 default,
                                                          * 2 saved, 3 capabilities */
#define NVME_FEAT_CAP_CHANGEABLE (1u << 2)  /* GET SEL=3 dw0 */

/* ABORT: cdw10 = SQID 15:0 | CID 31:16; completion dw0 bit 0 = 1 when the
 * command was NOT aborted. */
#define NVME_ABORT_NOT_ABORTED   1u

/* GET LOG PAGE: cdw10 LID 7:0, NUMDL 31:16; cdw11 NUMDU 15:0 (dwords, 0-based) */
#define NVME_LOG_ERROR      0x01u   /* 64 bytes per entry */
#define NVME_LOG_SMART      0x02u   /* 512 bytes */
#define NVME_LOG_FW_SLOT    0x03u   /* 512 bytes */
#define NVME_SMART_TEMP     1       /* 16: composite temperature, kelvin */

/* READ / WRITE / WRITE ZEROES: SLBA in cdw10/11, NLB (0-based) in cdw12 15:0 */
#define NVME_RW_FUA     (1u << 30)
/* DSM: cdw10 NR (0-based ranges), cdw11 AD (deallocate) */
#define NVME_DSM_AD     (1u << 2)
struct nvme_dsm_range {
    uint32_t cattr;
    uint32_t nlb;               /* LBAs, 1-based */
    uint64_t slba;
};

/* ---- status codes (SCT << 8 | SC) --------------------------------------- */
enum nvme_status {
    NVME_SC_SUCCESS          = NVME_STATUS(0, 0x00),
    NVME_SC_INVALID_OPCODE   = NVME_STATUS(0, 0x01),
    NVME_SC_INVALID_FIELD    = NVME_STATUS(0, 0x02),
    NVME_SC_CID_CONFLICT     = NVME_STATUS(0, 0x03),
    NVME_SC_DATA_XFER_ERROR  = NVME_STATUS(0, 0x04),
    NVME_SC_INTERNAL         = NVME_STATUS(0, 0x06),
    NVME_SC_ABORT_REQ        = NVME_STATUS(0, 0x07),
    NVME_SC_ABORT_SQ_DELETED = NVME_STATUS(0, 0x08),
    NVME_SC_INVALID_NS       = NVME_STATUS(0, 0x0B),
    NVME_SC_CMD_SEQ_ERROR    = NVME_STATUS(0, 0x0C),
    NVME_SC_INVALID_PRP_OFFSET = NVME_STATUS(0, 0x13),
    NVME_SC_NS_WRITE_PROTECTED = NVME_STATUS(0, 0x20),
    NVME_SC_LBA_RANGE        = NVME_STATUS(0, 0x80),
    NVME_SC_CAP_EXCEEDED     = NVME_STATUS(0, 0x81),
    NVME_SC_CQ_INVALID       = NVME_STATUS(1, 0x00),
    NVME_SC_QID_INVALID      = NVME_STATUS(1, 0x01),
    NVME_SC_QUEUE_SIZE       = NVME_STATUS(1, 0x02),
    NVME_SC_ABORT_LIMIT      = NVME_STATUS(1, 0x03),
    NVME_SC_AER_LIMIT        = NVME_STATUS(1, 0x05),
    NVME_SC_INVALID_VECTOR   = NVME_STATUS(1, 0x08),
    NVME_SC_INVALID_LOG_PAGE = NVME_STATUS(1, 0x09),
    NVME_SC_INVALID_DELETE   = NVME_STATUS(1, 0x0C),
    NVME_SC_FEAT_NOT_SAVEABLE = NVME_STATUS(1, 0x0D),
    NVME_SC_WRITE_FAULT      = NVME_STATUS(2, 0x80),
    NVME_SC_READ_ERROR       = NVME_STATUS(2, 0x81),
};

/* ---- IDENTIFY data (4096 bytes each): byte offsets of the fields used --- */
#define NVME_IDC_VID      0     /* 16 */
#define NVME_IDC_SSVID    2     /* 16 */
#define NVME_IDC_SN       4     /* 20 ASCII, space padded */
#define NVME_IDC_MN       24    /* 40 ASCII */
#define NVME_IDC_FR       64    /* 8 ASCII */
#define NVME_IDC_MDTS     77    /* max transfer = 2^n min pages, 0 = no limit */
#define NVME_IDC_CNTLID   78    /* 16 */
#define NVME_IDC_VER      80    /* 32 */
#define NVME_IDC_OACS     256   /* 16: bit 8 Doorbell Buffer Config */
#define NVME_IDC_ACL      258   /* abort command limit, 0-based */
#define NVME_IDC_AERL     259   /* async event request limit, 0-based */
#define NVME_IDC_SQES     512   /* min 3:0, max 7:4 (log2) */
#define NVME_IDC_CQES     513
#define NVME_IDC_MAXCMD   514   /* 16 */
#define NVME_IDC_NN       516   /* 32: number of namespaces */
#define NVME_IDC_ONCS     520   /* 16: bit 2 DSM, bit 3 WRITE ZEROES */
#define NVME_IDC_VWC      525   /* bit 0: volatile write cache present */
#define NVME_OACS_DBBUF   (1u << 8)
#define NVME_ONCS_DSM     (1u << 2)
#define NVME_ONCS_WZ      (1u << 3)

#define NVME_IDNS_NSZE    0     /* 64: size in LBAs */
#define NVME_IDNS_NCAP    8     /* 64 */
#define NVME_IDNS_NUSE    16    /* 64 */
#define NVME_IDNS_NLBAF   25    /* number of LBA formats, 0-based */
#define NVME_IDNS_FLBAS   26    /* 3:0 index of the format in use */
#define NVME_IDNS_LBAF0   128   /* 16 x 32: MS 15:0, LBADS 23:16, RP 25:24 */
#define NVME_LBAF_LBADS(f) (((f) >> 16) & 0xFFu)
#define NVME_LBAF_MS(f)    ((f) & 0xFFFFu)

#define NVME_IDENTIFY_SIZE 4096u

/* ---- Doorbell Buffer Config (shadow doorbells + EventIdx) --------------
 * DBBUF_CONFIG: PRP1 = shadow doorbell page, PRP2 = EventIdx page, both
 * page-aligned. Each holds one dword per doorbell at the doorbell's index
 * (SQ y tail at 2y, CQ y head at 2y+1, times 4 << DSTRD bytes), for I/O
 * queues only. The driver writes every new value to the shadow slot, and
 * writes the MMIO doorbell too only when it passes the EventIdx the
 * controller published; a controller that is polling keeps EventIdx one
 * behind what it saw (no doorbells), and sets it to what it saw before it
 * sleeps (the next update rings). Both sides use this test, in 16-bit
 * arithmetic, as the Linux driver and QEMU do. */
static inline int nvme_dbbuf_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old)
{
    return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old);
}
#define NVME_DBBUF_SLOT(dbidx, dstrd) ((dbidx) * (1u << (dstrd)))  /* dword index */

/* NVM command set specific status (SCT 1, NVMe 1.4 Fig. 395): a write to
 * an LBA range marked read-only. */
#define NVME_SC_READ_ONLY_RANGE  NVME_STATUS(1, 0x82)

/* IDENTIFY namespace NSATTR (byte 99, NVMe 1.4 Fig. 245): bit 0 set while
 * the namespace is write protected. */
#define NVME_IDNS_NSATTR  99
#define NVME_NSATTR_WP    (1u << 0)

#endif /* MOAT_NVME_REGS_H */
