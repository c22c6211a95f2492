/*
 * moat/session_abi.h — capability sessions: the memory a client and a
 * serving domain share, the entries that cross it, and how a domain learns
 * of its sessions. Both sides and the VMM compile against this file.
 *
 * Session memory (one memfd created and formatted by the VMM; offsets are
 * page-aligned and given out of band — to the client in the OPEN_SESSION
 * reply, to the domain in its session table — never read back from the
 * shared memory itself):
 *   [sq_off, ...)   request ring   (client produces, domain consumes)
 *   [cq_off, ...)   completion ring (domain produces, client consumes)
 *   [data_off, data_off + data_size)  data buffers, addressed by byte
 *                   offset from data_off in each request
 * In the domain the memory sits at guest-physical MOAT_GPA_SESSION_BASE +
 * slot * MOAT_SESSION_SPAN. Kicks: the client writes an eventfd that KVM
 * turns into an interrupt on the domain's session vector (irqfd); the
 * domain writes 4 bytes to its slot's doorbell, which KVM turns into an
 * eventfd signal for the client (ioeventfd). The VMM is on neither path.
 *
 * Zero copy: the data area is also a DMA window of the serving domain
 * (MOAT_SLOT_DATA_DMA), at IOVA gpa + data_off, so its driver may point
 * the device straight at a request's buffer. The broker allows devices to
 * write it when the session has READ and to read it when it has WRITE, and
 * quiesces and scrubs it when the session ends, like any window.
 *
 * Trust: the two sides distrust each other. The domain validates every
 * request (opcode, range, buffer) before touching a byte; the client
 * validates every completion (tag outstanding, status known, length within
 * the request) and treats a bad one as a protocol violation of the domain.
 */
#ifndef MOAT_SESSION_ABI_H
#define MOAT_SESSION_ABI_H

#include <stdint.h>

/* ---- capability kinds and the block protocol --------------------------- */

enum moat_cap_kind {
    MOAT_CAP_CONTROL = 1,
    MOAT_CAP_BLOCK   = 2,
    MOAT_CAP_NIC     = 3,
};

/* Rights carried by a handle. */
#define MOAT_RIGHT_READ   0x1u   /* BlockDevice read/info; Nic receive; Control list/status */
#define MOAT_RIGHT_WRITE  0x2u   /* BlockDevice write/flush/zeroes/discard; Nic transmit */
#define MOAT_RIGHT_ADMIN  0x4u   /* Control restart/stop/inject */
#define MOAT_RIGHTS_ALL   0x7u

/* BlockDevice features (moat_blk_geometry.flags). */
#define MOAT_BLK_F_FLUSH        0x1u
#define MOAT_BLK_F_WRITE_ZEROES 0x2u
#define MOAT_BLK_F_DISCARD      0x4u
#define MOAT_BLK_F_READONLY     0x8u
#define MOAT_BLK_F_ALL          0xFu

struct moat_blk_geometry {
    uint32_t block_size;        /* power of two, 512..65536 */
    uint32_t max_blocks;        /* largest request the domain accepts */
    uint64_t blocks;            /* capacity in blocks, > 0 */
    uint32_t flags;             /* MOAT_BLK_F_* */
    uint32_t queues;            /* sessions the domain serves at once */
};

#define MOAT_BLK_BLOCK_MIN 512u
#define MOAT_BLK_BLOCK_MAX 65536u

enum moat_blk_op {
    MOAT_BLK_READ         = 1,
    MOAT_BLK_WRITE        = 2,
    MOAT_BLK_FLUSH        = 3,  /* every completed write before it is durable */
    MOAT_BLK_WRITE_ZEROES = 4,
    MOAT_BLK_DISCARD      = 5,
};

/* ---- the Nic protocol ------------------------------------------------------
 *
 * A Nic session carries Ethernet frames (no FCS) over the same rings as a
 * block session, with struct moat_nic_sqe / moat_nic_cqe (the same sizes
 * and tag/op/status positions as the block entries):
 *   MOAT_NIC_TX    send the len bytes at buf_off (ETH_HDR 14 .. max_frame);
 *                  completes once the frame left the session memory (the
 *                  buffer may then be reused), with len echoed. Needs WRITE.
 *   MOAT_NIC_RX    post a receive buffer of len bytes (>= max_frame) at
 *                  buf_off; completes when a frame arrives, with the
 *                  frame's length. Buffers are filled in the order posted;
 *                  when a session has none posted, frames for it are
 *                  dropped and counted. Needs READ.
 *                  Posted buffers, and frames the device had no room for
 *                  yet, complete with MOAT_ST_CANCELED when the session
 *                  closes.
 *   MOAT_NIC_INFO  fill a struct moat_nic_status at buf_off (len bytes,
 *                  >= its size): live link state and this session's
 *                  counters. Needs READ.
 * Every open session with READ receives every frame the NIC receives
 * (like a packet socket); TX frames of one session are sent in order.
 */
enum moat_nic_op {
    MOAT_NIC_TX   = 1,
    MOAT_NIC_RX   = 2,
    MOAT_NIC_INFO = 3,
};

/* Nic features (moat_nic_info.flags). */
#define MOAT_NIC_F_LINK_STATUS  0x1u    /* link state is reported (else always up) */
#define MOAT_NIC_F_ALL          0x1u

/* What a Nic cap says about itself (registered once per incarnation). */
struct moat_nic_info {
    uint8_t mac[6];
    uint16_t mtu;               /* 68..9000; max_frame = mtu + 14 */
    uint32_t max_frame;         /* largest frame in either direction */
    uint32_t flags;             /* MOAT_NIC_F_* */
    uint32_t queues;            /* sessions the domain serves at once */
    uint32_t reserved;
};

#define MOAT_NIC_MTU_MIN  68u
#define MOAT_NIC_MTU_MAX  9000u
#define MOAT_NIC_ETH_HDR  14u

/* MOAT_NIC_INFO's answer. Counters are this session's, since it opened. */
struct moat_nic_status {
    uint8_t mac[6];
    uint16_t link_up;           /* 1 up, 0 down */
    uint32_t mtu;
    uint32_t reserved;
    uint64_t tx_frames, tx_bytes;
    uint64_t rx_frames, rx_bytes;
    uint64_t rx_dropped;        /* frames for this session with no buffer posted */
    uint64_t tx_dropped;        /* frames the device refused (link down, error) */
};

struct moat_nic_sqe {
    uint64_t tag;
    uint16_t op;                /* enum moat_nic_op */
    uint16_t flags;             /* 0 */
    uint32_t len;               /* bytes: frame (TX), buffer (RX, INFO) */
    uint64_t reserved0;
    uint64_t buf_off;
    uint64_t reserved[4];
};

struct moat_nic_cqe {
    uint64_t tag;
    uint32_t status;            /* enum moat_status */
    uint32_t len;               /* TX: len sent; RX: frame length; INFO: size written */
    uint64_t reserved[2];
};

/* Completion status (moat_cqe.status). Anything else is malformed. */
enum moat_status {
    MOAT_ST_OK       = 0,
    MOAT_ST_EINVAL   = 1,       /* the domain refused the request as malformed */
    MOAT_ST_EIO      = 2,       /* the device reported an error */
    MOAT_ST_ENOTSUP  = 3,       /* operation not offered by this cap */
    MOAT_ST_EROFS    = 4,       /* write to a read-only device */
    MOAT_ST_ERANGE   = 5,       /* beyond the end of the device */
    MOAT_ST_EPERM    = 6,       /* the session lacks the right (e.g. write) */
    MOAT_ST_CANCELED = 7,       /* the session closed before it completed */
    MOAT_ST_MAX      = 7,
};

/* Request (SQ entry), 64 bytes. */
struct moat_sqe {
    uint64_t tag;               /* echoed in the completion */
    uint16_t op;                /* enum moat_blk_op (per cap kind) */
    uint16_t flags;             /* 0 */
    uint32_t blocks;            /* length in blocks */
    uint64_t lba;
    uint64_t buf_off;           /* data buffer: offset into the data area */
    uint64_t reserved[4];
};

/* Completion (CQ entry), 32 bytes. */
struct moat_cqe {
    uint64_t tag;
    uint32_t status;            /* enum moat_status */
    uint32_t blocks;            /* blocks transferred; <= request's blocks */
    uint64_t reserved[2];
};

_Static_assert(sizeof(struct moat_sqe) == 64, "SQ entry is ABI");
_Static_assert(sizeof(struct moat_cqe) == 32, "CQ entry is ABI");
_Static_assert(sizeof(struct moat_blk_geometry) == 24, "geometry is ABI");
_Static_assert(sizeof(struct moat_nic_info) == 24, "Nic info shares the geometry's place");
_Static_assert(sizeof(struct moat_nic_sqe) == sizeof(struct moat_sqe) &&
               __builtin_offsetof(struct moat_nic_sqe, op) == __builtin_offsetof(struct moat_sqe, op) &&
               __builtin_offsetof(struct moat_nic_sqe, len) == __builtin_offsetof(struct moat_sqe, blocks) &&
               __builtin_offsetof(struct moat_nic_sqe, buf_off) == __builtin_offsetof(struct moat_sqe, buf_off),
               "Nic requests travel in block-request slots");
_Static_assert(sizeof(struct moat_nic_cqe) == sizeof(struct moat_cqe) &&
               __builtin_offsetof(struct moat_nic_cqe, len) == __builtin_offsetof(struct moat_cqe, blocks),
               "Nic completions travel in block-completion slots");
_Static_assert(sizeof(struct moat_nic_status) == 64, "Nic status is ABI");

/* Session geometry limits (the client asks, the VMM checks). */
#define MOAT_SESSION_ENTRIES_MIN   8u
#define MOAT_SESSION_ENTRIES_MAX   4096u
#define MOAT_SESSION_DATA_MAX      (64ull << 20)
#define MOAT_SESSION_SPAN          (128ull << 20)   /* GPA stride per slot */
#define MOAT_SESSION_SLOTS         16u

/* ---- the domain's view: session table and cap registration ------------- */

/* Guest-physical page the VMM writes and the domain only reads. */
#define MOAT_GPA_SESSION_TABLE      0x3000ull
/* Doorbells: 4-byte writes at MOAT_GPA_SESSION_DOORBELL + 4 * slot. */
#define MOAT_GPA_SESSION_DOORBELL   0xFED00000ull
#define MOAT_SESSION_TABLE_MAGIC    0x4e4f495353454d4dull /* "MMSESSION" */

enum moat_slot_state {
    MOAT_SLOT_FREE    = 0,
    MOAT_SLOT_OPEN    = 1,      /* serve it */
    MOAT_SLOT_CLOSING = 2,      /* stop touching it, then release it */
};

/* The data area is a DMA window of the domain (IOVA = gpa + data_off). */
#define MOAT_SLOT_DATA_DMA          (1u << 0)

struct moat_session_slot {
    uint32_t seq;               /* odd while the VMM rewrites the slot */
    uint32_t state;             /* enum moat_slot_state */
    uint32_t cap_index;         /* which of the domain's registered caps */
    uint32_t session_id;        /* nonzero, unique per VMM run */
    uint32_t rights;            /* MOAT_RIGHT_*: the domain enforces them */
    uint32_t flags;             /* MOAT_SLOT_DATA_DMA */
    uint64_t gpa, size;         /* the session memory in the domain */
    uint32_t sq_entries, cq_entries;
    uint64_t sq_off, cq_off, data_off, data_size;
    uint64_t doorbell_gpa;
};

struct moat_session_table {
    uint64_t magic;
    uint32_t version;           /* 1 */
    uint32_t n_slots;           /* MOAT_SESSION_SLOTS */
    uint64_t changes;           /* bumped after every slot change */
    uint64_t reserved;
    struct moat_session_slot slot[MOAT_SESSION_SLOTS];
};
_Static_assert(sizeof(struct moat_session_table) <= 4096, "session table fits a page");

/* What a domain hands the VMM to register a cap (platform port CAP_REGISTER
 * with the structure's guest-physical address). Hostile to the VMM: copied
 * once, every field bounded. */
#define MOAT_CAP_NAME_MAX 24u
struct moat_cap_register {
    uint32_t kind;              /* enum moat_cap_kind (BLOCK or NIC) */
    uint32_t vector;            /* the domain's session interrupt vector */
    char name[MOAT_CAP_NAME_MAX];   /* suffix; the cap is "<domain>.<name>" */
    union {
        struct moat_blk_geometry blk;   /* kind == BLOCK */
        struct moat_nic_info nic;       /* kind == NIC */
    };
};

#endif /* MOAT_SESSION_ABI_H */
