/*
 * fuzz_control — the control-socket protocol (vmm/control.c: message
 * framing and validation, every request type, handles and rights, through
 * to capsvc and the audit trail) as a hostile client speaks it.
 *
 * Fixture (once per process): a supervisor with no KVM and no domains —
 * its lock, capsvc, audit trail and broker — and the real control thread
 * on a socket in a temp dir. Info lines are off (log_set_quiet): every
 * input connects and disconnects once.
 *
 * Input: a sequence of messages, each [u8 kind][u16 len] then bytes:
 *   kind % 4 == 0  raw: len bytes sent as one SEQPACKET message, as is;
 *   otherwise      well formed: type = next byte % (MOAT_MSG_TYPE_MAX + 2),
 *                  a nonzero seq, then a payload of exactly the size the
 *                  type wants, from the input, whose handle field (when
 *                  kind % 4 == 2) is the control handle the connection
 *                  last opened.
 * After each message the target waits (poll, 5 s) for the reply.
 *
 * Checks beyond the sanitizers (abort): a reply comes within 5 s or the
 * server closed the connection; a reply has the magic, the request's type
 * and seq, a status of 0 or -MOAT_E*, a length that matches its bytes and
 * fits MOAT_CTL_MSG_MAX; a well-formed request is always answered (never
 * a disconnect); a message without the magic or a sequence number always
 * ends the connection (a reply with seq 0 would read as an event).
 *
 * Seeds (harness/fuzz/corpus/fuzz_control/): HELLO then OPEN control then
 * DOMAINS/AUDIT/AUDIT_SUM/STATS; a malformed header; a bad type.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "ctl_fixture.h"
#include "fuzz_input.h"
#include "moat/control_abi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define MSGS_MAX 32u

static struct supervisor sup;
static struct control ctl;
static char sock_path[108];

#define CHECK(c, why)                                                             \
    do {                                                                          \
        if (!(c))                                                                 \
            FZ_FAIL("%s", why);                                                   \
    } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[256];
    static char dir[] = "/tmp/moat-fuzzctl.XXXXXX";
    CHECK(mkdtemp(dir), "mkdtemp");
    snprintf(sock_path, sizeof sock_path, "%s/moat.sock", dir);
    if (!ctl_fixture_start(&sup, &ctl, sock_path, err, sizeof err)) {
        fprintf(stderr, "fuzz_control: %s\n", err);
        abort();
    }
    return 0;
}

/* The size the type wants; a type no client may send gets a ctl_req's. */
static size_t payload_len(uint16_t type)
{
    size_t n = control_request_len(type);
    return n == SIZE_MAX ? sizeof(struct moat_ctl_req) : n;
}

/* Wait for the reply to (type, seq). False when the server hung up. */
static bool await_reply(int fd, uint16_t type, uint32_t seq, uint64_t *handle)
{
    static union { struct moat_msg_hdr h; uint8_t b[MOAT_CTL_MSG_MAX + 64]; } in;
    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r = poll(&p, 1, 5000);     /* generous: the machine may be loaded */
        CHECK(r == 1, "no reply and no hang-up within 5 s");
        char cbuf[CMSG_SPACE(4 * sizeof(int))];
        struct iovec iov = { in.b, sizeof in.b };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                            .msg_controllen = sizeof cbuf };
        ssize_t n = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
        if (n <= 0)
            return false;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm))
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
                for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
                    int got;
                    memcpy(&got, CMSG_DATA(cm) + i * sizeof(int), sizeof got);
                    close(got);
                }
        CHECK((size_t)n >= sizeof in.h, "a reply shorter than its header");
        CHECK(in.h.magic == MOAT_CTL_MAGIC, "a reply without the magic");
        CHECK(in.h.len == (size_t)n - sizeof in.h, "a reply whose length is not its size");
        CHECK(in.h.len <= MOAT_CTL_MSG_MAX, "a reply larger than MOAT_CTL_MSG_MAX");
        if (in.h.seq == 0 && in.h.type == MOAT_MSG_EVENT)
            continue;                       /* an event */
        CHECK(in.h.seq == seq, "a reply to a request that was not made");
        CHECK(in.h.type == type, "a reply of another type");
        CHECK(in.h.status <= 0 && in.h.status >= -MOAT_ERR_MAX, "a reply status out of range");
        if (in.h.status == 0 && type == MOAT_MSG_OPEN && in.h.len >= sizeof(struct moat_open_reply))
            memcpy(handle, in.b + sizeof in.h, sizeof *handle);
        return true;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f = fz_init(data, size);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0, "socket");
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof a.sun_path, "%s", sock_path);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect to the control socket");
    static uint8_t msg[MOAT_CTL_MSG_MAX];
    uint64_t handle = 0;
    uint32_t seq = 1;
    for (unsigned i = 0; i < MSGS_MAX && fz_left(&f) > 0; i++) {
        uint8_t kind = fz_u8(&f);
        size_t len = fz_u16(&f) % 2048u;
        struct moat_msg_hdr *h = (struct moat_msg_hdr *)msg;
        size_t total;
        bool well_formed = kind % 4 != 0;
        if (!well_formed) {
            total = len;
            memset(msg, 0, sizeof *h);
            fz_bytes(&f, msg, total);
            if (total == 0)
                continue;               /* SEQPACKET: an empty send is no message */
        } else {
            uint16_t type = (uint16_t)(fz_u8(&f) % (MOAT_MSG_TYPE_MAX + 2u));
            size_t plen = payload_len(type);
            memset(h, 0, sizeof *h);
            h->magic = MOAT_CTL_MAGIC;
            h->type = type;
            h->seq = seq++;
            h->len = (uint32_t)plen;
            fz_bytes(&f, msg + sizeof *h, plen);
            if (kind % 4 == 2 && plen >= sizeof(uint64_t) && type != MOAT_MSG_HELLO &&
                type != MOAT_MSG_OPEN && type != MOAT_MSG_REPORT &&
                type != MOAT_MSG_CLOSE_SESSION)
                memcpy(msg + sizeof *h, &handle, sizeof handle);
            if (type == MOAT_MSG_OPEN && kind % 4 == 2)     /* reach the control cap */
                snprintf((char *)msg + sizeof *h, MOAT_NAME_LEN, "control");
            total = sizeof *h + plen;
        }
        ssize_t w = send(fd, msg, total, MSG_NOSIGNAL);
        if (w < 0) {
            CHECK(!well_formed || errno == EPIPE || errno == ECONNRESET, "send failed");
            break;                      /* the server hung up on an earlier message */
        }
        bool has_magic = total >= 4 && h->magic == MOAT_CTL_MAGIC;
        bool has_seq = total >= 12 && h->seq != 0;
        bool answered = await_reply(fd, h->type, h->seq, &handle);
        if (well_formed && h->type >= 1 && h->type <= MOAT_MSG_TYPE_MAX &&
            h->type != MOAT_MSG_EVENT)
            CHECK(answered, "a well-formed request was not answered");
        if (!has_magic || !has_seq)
            CHECK(!answered, "a message without the magic or a sequence number got a reply");
        if (!answered)
            break;
    }
    close(fd);
    return 0;
}
