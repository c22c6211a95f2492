/* The control socket's framing, without KVM: a supervisor with no
 * domains and the real control thread. Regression for fuzz_control's
 * seq0-request-reply-reads-as-event: a malformed request with the magic
 * and sequence number 0 was answered with seq 0, which a client reads as
 * an event and waits on forever; such a client is now dropped, while a
 * malformed request with a sequence number still gets EINVAL. */
#include <criterion/criterion.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "ctl_fixture.h"
#include "moat/control_abi.h"
#include "testutil.h"

static struct supervisor sup;
static struct control ctl;
static char path[108];

static void setup(void)
{
    char err[256];
    snprintf(path, sizeof path, "%s/ctl.sock", tu_tmpdir());
    cr_assert(ctl_fixture_start(&sup, &ctl, path, err, sizeof err), "%s", err);
}

static void teardown(void) { ctl_fixture_stop(&sup, &ctl); }

static int connect_ctl(void)
{
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    cr_assert(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect %s", path);
    return fd;
}

/* The next message within 5 s: its header in *h; false when the server
 * hung up. */
static bool next_msg(int fd, struct moat_msg_hdr *h)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    cr_assert_eq(poll(&p, 1, 5000), 1, "neither a reply nor a hang-up within 5 s");
    char buf[MOAT_CTL_MSG_MAX];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0)
        return false;
    cr_assert_geq((size_t)n, sizeof *h);
    memcpy(h, buf, sizeof *h);
    return true;
}

Test(control_proto, seq0_request_reply_reads_as_event, .init = setup, .fini = teardown)
{
    int fd = connect_ctl();
    struct moat_msg_hdr q = { .magic = MOAT_CTL_MAGIC, .type = MOAT_MSG_EVENT, .seq = 0 };
    cr_assert_eq(send(fd, &q, sizeof q, 0), (ssize_t)sizeof q);
    struct moat_msg_hdr r;
    cr_assert_not(next_msg(fd, &r), "a request without a sequence number was answered "
                  "(type %u seq %u): a client would take it for an event", r.type, r.seq);
    close(fd);
}

Test(control_proto, malformed_request_with_a_sequence_number_gets_einval, .init = setup,
     .fini = teardown)
{
    int fd = connect_ctl();
    struct moat_msg_hdr q = { .magic = MOAT_CTL_MAGIC, .type = MOAT_MSG_HELLO, .seq = 7,
                              .len = 0 };     /* HELLO wants a payload */
    cr_assert_eq(send(fd, &q, sizeof q, 0), (ssize_t)sizeof q);
    struct moat_msg_hdr r;
    cr_assert(next_msg(fd, &r), "the server hung up on a malformed request it could answer");
    cr_assert_eq(r.seq, 7u, "reply to seq %u, want 7", r.seq);
    cr_assert_eq(r.status, -MOAT_EINVAL, "status %d, want -EINVAL", r.status);
    close(fd);
}
