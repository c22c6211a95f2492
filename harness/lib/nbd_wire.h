/*
 * nbd_wire.h — the NBD wire constants as the tests speak them (the NBD
 * spec, doc/proto.md of NetworkBlockDevice/nbd), written independently of
 * clients/moat-nbd/nbd_server.c so a wrong constant there fails a test.
 * Used by harness/unit/test_nbd.c and harness/fuzz/fuzz_nbd.c.
 */
#ifndef MOAT_NBD_WIRE_H
#define MOAT_NBD_WIRE_H

#define MAGIC_INIT       0x4e42444d41474943ull
#define MAGIC_OPT        0x49484156454f5054ull
#define MAGIC_OPT_REPLY  0x0003e889045565a9ull
#define MAGIC_REQ        0x25609513u
#define MAGIC_REPLY      0x67446698u
#define OPT_EXPORT_NAME  1u
#define OPT_ABORT        2u
#define OPT_LIST         3u
#define OPT_INFO         6u
#define OPT_GO           7u
#define OPT_STRUCTURED   8u
#define OPT_SET_META     10u
#define REP_ACK          1u
#define REP_SERVER       2u
#define REP_INFO         3u
#define REP_ERR_UNSUP    0x80000001u
#define REP_ERR_INVALID  0x80000003u
#define REP_ERR_UNKNOWN  0x80000006u
#define REP_ERR_TOO_BIG  0x80000009u
#define INFO_EXPORT      0u
#define INFO_NAME        1u
#define INFO_DESCRIPTION 2u
#define INFO_BLOCK_SIZE  3u
#define CMD_READ         0u
#define CMD_WRITE        1u
#define CMD_DISC         2u
#define CMD_FLUSH        3u
#define CMD_TRIM         4u
#define CMD_CACHE        5u
#define CMD_WRITE_ZEROES 6u
#define CMD_BLOCK_STATUS 7u
#define CMDF_FUA         0x1u
#define CMDF_NO_HOLE     0x2u
#define CMDF_FAST_ZERO   0x10u
#define TF_HAS_FLAGS     0x1u
#define TF_READ_ONLY     0x2u
#define TF_SEND_FLUSH    0x4u
#define TF_SEND_FUA      0x8u
#define TF_SEND_TRIM     0x20u
#define TF_SEND_WZ       0x40u
#define TF_MULTI_CONN    0x100u
#define E_PERM           1u
#define E_IO             5u
#define E_INVAL          22u
#define E_NOSPC          28u
#define E_NOTSUP         95u
#define E_NOMEM          12u

#endif /* MOAT_NBD_WIRE_H */
