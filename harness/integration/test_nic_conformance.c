/*
 * Nic conformance under KVM: the virtio-net driver domain on moat's
 * virtio-net model, in the modern shape and in the legacy GCE shape
 * (PIO BAR0, INTx, a device-fixed 4096-entry queue), each paired with a
 * modern peer domain on the same switch. Checked through libmoat only:
 * the MAC and link the cap reports; frames of every length 60..1514 sent in
 * batches both ways and verified byte for byte, in order, never twice;
 * frames for a session with no buffer posted are dropped and counted
 * without harming the other session; a driver out of transmit buffers
 * loses nothing; one million frames between two
 * clients on two NIC domains; a DHCP exchange with the built-in gateway
 * (and the moat-netdemo client end to end); a pcap written during a test
 * read back by tcpdump; link changes of the device reach the cap's status;
 * a restarted NIC domain serves again.
 */
#include <criterion/criterion.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "control.h"
#include "gvnic.h"
#include "moat/netpkt.h"
#include "libmoat_internal.h"
#include "netback.h"
#include "supervisor.h"
#include "testutil.h"
#include "virtio_net.h"

#define BOOT_MS 20000u
#define WAIT_MS 5000
#define ENTRIES 256u
#define WINDOW  64u             /* frames in flight per direction: < posted buffers */

static struct supervisor sup;
static struct control ctl;
static char err[512];
static char sock[PATH_MAX];

static const uint8_t MAC_A[6] = { 0x52, 0x54, 0x00, 0xaa, 0x00, 0x01 };
static const uint8_t MAC_B[6] = { 0x52, 0x54, 0x00, 0xbb, 0x00, 0x02 };

static void start_with(const struct netback_config *nb)
{
    TU_REQUIRE_KVM();
    if (nb)
        cr_assert(netback_setup(nb, err, sizeof err), "netback: %s", err);
    cr_assert(tu_moat_start(&sup, &ctl, NULL, sock, sizeof sock, err, sizeof err), "%s", err);
}

static void start(void) { start_with(NULL); }

static void finish(void)
{
    tu_moat_stop(&sup, &ctl);
    netback_shutdown();
}

/* ---- domains and clients ------------------------------------------------------------ */

/* A NIC device kind and the driver domain image that drives it. */
struct nic_kind {
    const char *image, *dev;
};
static const struct nic_kind VNET = { "vnet", "virtio-net" }, GVNIC = { "gvnic", "gvnic" };

static struct domain *boot_nic_as(const struct nic_kind *k, const char *name, const uint8_t mac[6],
                                  const char *dev_extra, const char *args)
{
    char spec[1024];
    snprintf(spec, sizeof spec,
             "name=%s kernel=%s mem=64M dma=16M "
             "dev=%s:mac=%02x-%02x-%02x-%02x-%02x-%02x%s%s args=\"name=nic0 %s\"", name,
             tu_guest(k->image), k->dev, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5],
             dev_extra[0] ? ":" : "", dev_extra, args);
    struct domain *d = tu_boot(&sup, spec, BOOT_MS, err, sizeof err);
    cr_assert_not_null(d, "boot %s: %s", name, err);
    return d;
}

static struct domain *boot_nic(const char *name, const uint8_t mac[6], const char *dev_extra,
                               const char *args)
{
    return boot_nic_as(&VNET, name, mac, dev_extra, args);
}

struct conn {
    struct moat_client *c;
    struct moat_cap *cap;
    struct moat_session *s;
    struct moat_nic_info info;
};

static struct conn nic_open(const char *domain)
{
    struct conn k = { 0 };
    char cap[64];
    snprintf(cap, sizeof cap, "%s.nic0", domain);
    int rc = moat_connect(sock, &k.c);
    if (!rc)
        rc = moat_open(k.c, cap, MOAT_RIGHT_READ | MOAT_RIGHT_WRITE, &k.cap);
    struct moat_session_params p = { .entries = ENTRIES };
    if (!rc)
        rc = moat_session_open(k.cap, &p, &k.s);
    if (!rc)
        rc = moat_nic_info(k.cap, &k.info);
    cr_assert_eq(rc, 0, "open a Nic session on %s: %s", cap, moat_strerror(rc));
    /* Post the receive buffers now (a zero-timeout receive does it). */
    struct moat_frame none = { 0 };
    rc = moat_nic_recv(k.s, &none, 0, 0);
    cr_assert_geq(rc, 0, "posting receive buffers on %s: %s", cap, moat_strerror(rc));
    return k;
}

static void nic_close(struct conn *k) { tu_client_close(k->s, k->cap, k->c); }

/* A test frame: to dst from src, ethertype 0x88b5 (local experimental),
 * then the sequence number, then a pattern derived from both. */
static size_t make_frame(uint8_t *f, size_t len, const uint8_t dst[6], const uint8_t src[6],
                         uint32_t seq)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    f[12] = 0x88;
    f[13] = 0xb5;
    memcpy(f + 14, &seq, 4);
    for (size_t i = 18; i < len; i++)
        f[i] = (uint8_t)(seq * 31u + i * 7u + (i >> 8));
    return len;
}

static uint32_t frame_seq(const uint8_t *f) { uint32_t s; memcpy(&s, f + 14, 4); return s; }

/* Moves frames one way with at most WINDOW in flight; every frame is
 * checked byte for byte against what was sent, in order. */
struct stream {
    struct conn *tx, *rx;
    const uint8_t *dst, *src;
    uint32_t sent, got, total;
    uint32_t (*len_of)(uint32_t seq);
    uint64_t deadline_ns;
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* One step: send what the window allows, take what arrived. True while
 * the stream still has work. Fails the test on any wrong frame. */
static bool stream_step(struct stream *st, int wait_ms)
{
    static uint8_t out[32][1514];
    struct moat_frame fr[32];
    uint32_t n = 0;
    while (n < 32 && st->sent + n < st->total && st->sent + n - st->got < WINDOW) {
        uint32_t seq = st->sent + n;
        fr[n] = (struct moat_frame){ .data = out[n],
                                     .len = (uint32_t)make_frame(out[n], st->len_of(seq), st->dst,
                                                                 st->src, seq) };
        n++;
    }
    if (n) {
        int q = moat_nic_send(st->tx->s, fr, n);
        cr_assert_geq(q, 0, "send: %s", moat_strerror(q));
        st->sent += (uint32_t)q;
    }
    static uint8_t in[32][1514], want[1514];
    struct moat_frame rf[32];
    for (int i = 0; i < 32; i++)
        rf[i] = (struct moat_frame){ .data = in[i], .len = sizeof in[i] };
    int r = moat_nic_recv(st->rx->s, rf, 32, st->got < st->sent ? wait_ms : 0);
    if (r == -MOAT_ETIMEDOUT)
        r = 0;
    cr_assert_geq(r, 0, "receive: %s", moat_strerror(r));
    for (int i = 0; i < r; i++) {
        uint32_t seq = st->got;
        cr_assert_geq(rf[i].len, 18u, "a %u-byte frame arrived", rf[i].len);
        cr_assert_eq(frame_seq(in[i]), seq,
                     "frame %u arrived where frame %u was due (lost, reordered or twice)",
                     frame_seq(in[i]), seq);
        uint32_t len = st->len_of(seq);
        cr_assert_eq(rf[i].len, len, "frame %u: %u bytes arrived, %u sent", seq, rf[i].len, len);
        make_frame(want, len, st->dst, st->src, seq);
        cr_assert(!memcmp(in[i], want, len), "frame %u (%u bytes) differs from what was sent",
                  seq, len);
        st->got++;
    }
    cr_assert_lt(mono_ns(), st->deadline_ns, "stream stalled: %u of %u sent, %u received",
                 st->sent, st->total, st->got);
    return st->got < st->total;
}

static uint32_t sweep_max = 1514u;     /* the largest frame of a sweep: MTU + 14 */
static uint32_t len_sweep(uint32_t seq) { return 60u + seq % (sweep_max - 60u + 1u); }
static uint32_t len_64(uint32_t seq) { (void)seq; return 64u; }

/* ---- the conformance suite, against one shape ------------------------------------------ */

/* The device under test (nica, of kind k, MTU mtu) against a modern
 * virtio-net partner (nicb). */
static void conformance_as(const struct nic_kind *k, const char *dut_dev, const char *what,
                           uint32_t mtu)
{
    boot_nic_as(k, "nica", MAC_A, dut_dev, "");
    boot_nic("nicb", MAC_B, "", "");
    struct conn a = nic_open("nica"), b = nic_open("nicb");

    /* MAC and link as the cap and the live status report them. */
    cr_assert(!memcmp(a.info.mac, MAC_A, 6), "%s: the cap's MAC is not the device's", what);
    cr_assert(a.info.mtu == mtu && a.info.max_frame == mtu + 14u, "%s: MTU %u, max frame %u",
              what, a.info.mtu, a.info.max_frame);
    sweep_max = mtu + 14u;
    struct moat_nic_status sa;
    int rc = moat_nic_status(a.s, &sa);
    cr_assert_eq(rc, 0, "%s: status: %s", what, moat_strerror(rc));
    cr_assert(sa.link_up == 1 && !memcmp(sa.mac, MAC_A, 6), "%s: link %u or MAC wrong in status",
              what, sa.link_up);

    /* A second session on B that never posts a buffer: its copies are
     * dropped and counted, and B's first session still gets everything. */
    struct conn idle = { 0 };
    idle.c = b.c;
    cr_assert_eq(moat_session_open(b.cap, &(struct moat_session_params){ .entries = 16 }, &idle.s), 0,
                 "%s: a second session on nicb.nic0", what);

    /* Every length 60..MTU + 14, both ways, in batches, verified. */
    uint32_t n = sweep_max - 60u + 1u;
    struct stream ab = { &a, &b, MAC_B, MAC_A, 0, 0, n, len_sweep, mono_ns() + 60000000000ull };
    struct stream ba = { &b, &a, MAC_A, MAC_B, 0, 0, n, len_sweep, mono_ns() + 60000000000ull };
    bool more;
    do {
        more = stream_step(&ab, 0);
        more |= stream_step(&ba, 1);
    } while (more);

    struct moat_nic_status si, sb;
    cr_assert_eq(moat_nic_status(idle.s, &si), 0, "%s: idle session status", what);
    cr_assert_eq(moat_nic_status(b.s, &sb), 0, "%s: nicb status", what);
    cr_assert_eq(si.rx_dropped, n, "%s: the idle session dropped %lu frames, %u arrived for it",
                 what, (unsigned long)si.rx_dropped, n);
    cr_assert_eq(si.rx_frames, 0, "%s: the idle session received without buffers", what);
    cr_assert_eq(sb.rx_frames, n, "%s: nicb's session counted %lu received, %u arrived", what,
                 (unsigned long)sb.rx_frames, n);
    cr_assert_eq(sb.tx_frames, n, "%s: nicb's session counted %lu sent", what, (unsigned long)sb.tx_frames);
    cr_assert_eq(sb.rx_dropped, 0, "%s: the receiving session dropped %lu", what,
                 (unsigned long)sb.rx_dropped);

    /* Malformed sends are refused before anything is queued. */
    uint8_t tiny[13] = { 0 };
    struct moat_frame bad = { .data = tiny, .len = sizeof tiny };
    cr_assert_eq(moat_nic_send(a.s, &bad, 1), -MOAT_EINVAL, "%s: a 13-byte frame was accepted", what);
    moat_session_close(idle.s);
    nic_close(&a);
    nic_close(&b);
    sweep_max = 1514u;
}

static void conformance(const char *dut_dev, const char *what)
{
    conformance_as(&VNET, dut_dev, what, 1500);
}

Test(nic_conformance, gvnic_gqi_qpl_mtu_1500, .init = start, .fini = finish, .timeout = 240)
{
    conformance_as(&GVNIC, "mtu=1500", "gVNIC GQI-QPL, MTU 1500", 1500);
}

Test(nic_conformance, gvnic_gqi_qpl_mtu_1460, .init = start, .fini = finish, .timeout = 240)
{
    conformance_as(&GVNIC, "", "gVNIC GQI-QPL, MTU 1460 (GCE's)", 1460);
}

Test(nic_conformance, gvnic_dqo_rda_mtu_1500, .init = start, .fini = finish, .timeout = 240)
{
    conformance_as(&GVNIC, "format=dqo-rda:mtu=1500", "gVNIC DQO-RDA, MTU 1500", 1500);
}

Test(nic_conformance, gvnic_dqo_rda_mtu_1460, .init = start, .fini = finish, .timeout = 240)
{
    conformance_as(&GVNIC, "format=dqo-rda", "gVNIC DQO-RDA, MTU 1460 (GCE's)", 1460);
}

Test(nic_conformance, modern, .init = start, .fini = finish, .timeout = 240)
{
    conformance("", "modern");
}

Test(nic_conformance, legacy_4096, .init = start, .fini = finish, .timeout = 240)
{
    conformance("legacy=1:qsize=4096", "legacy 4096");
}

/* ---- transmit back-pressure ---------------------------------------------------------- */

/* nica's driver has 4 transmit buffers, so batches of 32 are refused
 * again and again; its session both sends and receives. Frames the device
 * had no room for must wait without holding up the receive buffers posted
 * behind them: nothing is lost either way, nothing is dropped. */
Test(nic_conformance, transmit_back_pressure_loses_nothing, .init = start, .fini = finish,
     .timeout = 180)
{
    boot_nic("nica", MAC_A, "", "tx_bufs=4");
    boot_nic("nicb", MAC_B, "", "");
    struct conn a = nic_open("nica"), b = nic_open("nicb");
    const uint32_t n = 20000;
    struct stream ab = { &a, &b, MAC_B, MAC_A, 0, 0, n, len_sweep, mono_ns() + 120000000000ull };
    struct stream ba = { &b, &a, MAC_A, MAC_B, 0, 0, n, len_sweep, mono_ns() + 120000000000ull };
    bool more;
    do {
        more = stream_step(&ab, 0);
        more |= stream_step(&ba, 1);
    } while (more);
    struct moat_nic_status sa;
    cr_assert_eq(moat_nic_status(a.s, &sa), 0, "status");
    cr_assert(sa.tx_frames == n && sa.rx_frames == n && sa.rx_dropped == 0,
              "nica under back-pressure: %lu sent, %lu received, %lu dropped",
              (unsigned long)sa.tx_frames, (unsigned long)sa.rx_frames, (unsigned long)sa.rx_dropped);
    nic_close(&a);
    nic_close(&b);
}

/* ---- a million frames ----------------------------------------------------------------- */

/* 500,000 64-byte frames each way between nica (kind ka, device options
 * deva) and nicb (a virtio-net, devb), every one verified. */
static void million(const struct nic_kind *ka, const char *deva, const char *devb,
                    const char *what)
{
    boot_nic_as(ka, "nica", MAC_A, deva, "");
    boot_nic("nicb", MAC_B, devb, "");
    struct conn a = nic_open("nica"), b = nic_open("nicb");
    const uint32_t each = 500000;   /* each way: one million frames exchanged */
    uint64_t t0 = mono_ns();
    struct stream ab = { &a, &b, MAC_B, MAC_A, 0, 0, each, len_64, t0 + 480000000000ull };
    struct stream ba = { &b, &a, MAC_A, MAC_B, 0, 0, each, len_64, t0 + 480000000000ull };
    bool more;
    do {
        more = stream_step(&ab, 1);
        more |= stream_step(&ba, 1);
    } while (more);
    double s = (double)(mono_ns() - t0) / 1e9;
    fprintf(stderr, "nic_conformance: %s: %u frames exchanged in %.1f s (%.0f frames/s)\n", what,
            2 * each, s, 2.0 * each / s);
    struct moat_nic_status sa;
    cr_assert_eq(moat_nic_status(a.s, &sa), 0, "status");
    cr_assert(sa.rx_frames == each && sa.tx_frames == each && sa.rx_dropped == 0,
              "%s: nica's counters: %lu in, %lu out, %lu dropped", what,
              (unsigned long)sa.rx_frames, (unsigned long)sa.tx_frames,
              (unsigned long)sa.rx_dropped);
    nic_close(&a);
    nic_close(&b);
}

Test(nic_conformance, million_frames_between_two_domains, .init = start, .fini = finish,
     .timeout = 600)
{
    million(&VNET, "", "legacy=1:qsize=4096", "virtio-net modern <-> legacy");
}

Test(nic_conformance, million_frames_between_gvnic_and_virtio_net, .init = start, .fini = finish,
     .timeout = 600)
{
    million(&GVNIC, "format=gqi-qpl:mtu=1500", "", "gVNIC GQI-QPL <-> virtio-net");
}

Test(nic_conformance, million_frames_between_gvnic_dqo_and_virtio_net, .init = start,
     .fini = finish, .timeout = 600)
{
    million(&GVNIC, "format=dqo-rda:mtu=1500", "", "gVNIC DQO-RDA <-> virtio-net");
}

/* ---- the gateway ---------------------------------------------------------------------- */

static int recv_until(struct conn *k, uint8_t *buf, uint32_t *len,
                      bool (*match)(const uint8_t *, size_t, void *), void *arg)
{
    uint64_t deadline = mono_ns() + (uint64_t)WAIT_MS * 1000000ull;
    while (mono_ns() < deadline) {
        struct moat_frame fr = { .data = buf, .len = 1514 };
        int r = moat_nic_recv(k->s, &fr, 1, 100);
        if (r == 1 && match(buf, fr.len, arg)) {
            *len = fr.len;
            return 0;
        }
        if (r < 0 && r != -MOAT_ETIMEDOUT)
            return r;
    }
    return -MOAT_ETIMEDOUT;
}

struct dhcp_match { const uint8_t *mac; uint32_t xid; struct netpkt_dhcp_reply r; };
static bool dhcp_matches(const uint8_t *f, size_t len, void *arg)
{
    struct dhcp_match *m = arg;
    return netpkt_dhcp_reply(f, len, m->mac, m->xid, &m->r);
}

/* A lease from the gateway by hand, then moat-netdemo's whole exchange. */
static void dhcp_with_the_gateway_over(const struct nic_kind *k, const char *dev)
{
    boot_nic_as(k, "nica", MAC_A, dev, "");
    struct conn a = nic_open("nica");
    uint8_t f[1514];
    uint32_t len;
    struct dhcp_match m = { .mac = MAC_A, .xid = 0x6d6f6174 };
    size_t n = netpkt_dhcp_client(f, sizeof f, NETPKT_DHCP_DISCOVER, MAC_A, m.xid, 0, 0);
    cr_assert_eq(moat_nic_send(a.s, &(struct moat_frame){ f, (uint32_t)n }, 1), 1, "send DISCOVER");
    int rc = recv_until(&a, f, &len, dhcp_matches, &m);
    cr_assert_eq(rc, 0, "no DHCP OFFER from the gateway: %s", moat_strerror(rc));
    struct netback *nb = netback_get();
    cr_assert_eq(m.r.type, NETPKT_DHCP_OFFER, "the answer to DISCOVER is type %d", m.r.type);
    cr_assert_eq(m.r.yiaddr, netback_dhcp_first(nb), "offered %#x, the first lease is %#x",
                 m.r.yiaddr, netback_dhcp_first(nb));
    cr_assert_eq(m.r.server_id, netback_gateway_ip(nb), "server id %#x", m.r.server_id);
    cr_assert_eq(m.r.mask, 0xffffff00u, "subnet mask %#x for a /24", m.r.mask);
    uint32_t offered = m.r.yiaddr;
    n = netpkt_dhcp_client(f, sizeof f, NETPKT_DHCP_REQUEST, MAC_A, m.xid, offered, m.r.server_id);
    cr_assert_eq(moat_nic_send(a.s, &(struct moat_frame){ f, (uint32_t)n }, 1), 1, "send REQUEST");
    rc = recv_until(&a, f, &len, dhcp_matches, &m);
    cr_assert_eq(rc, 0, "no DHCP ACK: %s", moat_strerror(rc));
    cr_assert(m.r.type == NETPKT_DHCP_ACK && m.r.yiaddr == offered,
              "REQUEST for the offer answered with type %d for %#x", m.r.type, m.r.yiaddr);
    nic_close(&a);

    /* The demo client does the whole exchange, ARP and pings, end to end. */
    char cmd[PATH_MAX * 2];
    snprintf(cmd, sizeof cmd, "%s/asan/bin/moat-netdemo --socket %s --count 3 nica.nic0 2>&1",
             MOAT_BUILD_DIR, sock);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "run moat-netdemo");
    char out[4096] = "";
    size_t got = fread(out, 1, sizeof out - 1, p);
    out[got] = '\0';
    int status = pclose(p);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "moat-netdemo failed:\n%s", out);
    cr_assert_not_null(strstr(out, "ping: 3/3 answered"), "moat-netdemo output:\n%s", out);
}

Test(nic_conformance, dhcp_with_the_gateway, .init = start, .fini = finish, .timeout = 120)
{
    dhcp_with_the_gateway_over(&VNET, "legacy=1:qsize=4096");
}

Test(nic_conformance, dhcp_with_the_gateway_over_gvnic, .init = start, .fini = finish,
     .timeout = 120)
{
    dhcp_with_the_gateway_over(&GVNIC, "");
}

/* ---- pcap ------------------------------------------------------------------------------ */

static struct netback_config pcap_cfg;
static char pcap_path[PATH_MAX];

static void start_pcap(void)
{
    netback_config_default(&pcap_cfg);
    snprintf(pcap_path, sizeof pcap_path, "%s/nica.pcap", tu_tmpdir());
    char arg[PATH_MAX + 64];
    snprintf(arg, sizeof arg, "nica.virtio-net0=%s", pcap_path);
    cr_assert(netback_parse_pcap(arg, &pcap_cfg, err, sizeof err), "pcap option: %s", err);
    start_with(&pcap_cfg);
}

Test(nic_conformance, pcap_opens_in_tcpdump, .init = start_pcap, .fini = finish, .timeout = 120)
{
    if (access("/usr/bin/tcpdump", X_OK) != 0 && access("/usr/sbin/tcpdump", X_OK) != 0) {
        fprintf(stderr, "SKIPPED: tcpdump is not installed (scripts/install-deps.sh installs it)\n");
        cr_skip_test("SKIPPED: tcpdump missing");
    }
    boot_nic("nica", MAC_A, "", "");
    boot_nic("nicb", MAC_B, "", "");
    struct conn a = nic_open("nica"), b = nic_open("nicb");
    const uint32_t n = 10;
    struct stream ab = { &a, &b, MAC_B, MAC_A, 0, 0, n, len_sweep, mono_ns() + 30000000000ull };
    while (stream_step(&ab, 10)) {
    }
    nic_close(&a);
    nic_close(&b);
    char cmd[PATH_MAX * 2];
    snprintf(cmd, sizeof cmd, "tcpdump -nn -e -r %s ether proto 0x88b5 2>&1", pcap_path);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "run tcpdump");
    char line[512], all[16384] = "";
    unsigned frames = 0;
    while (fgets(line, sizeof line, p)) {
        if (strlen(all) + strlen(line) < sizeof all)
            strcat(all, line);
        frames += strstr(line, "52:54:00:aa:00:01 > 52:54:00:bb:00:02") != NULL;
    }
    int status = pclose(p);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "tcpdump could not read the pcap:\n%s", all);
    cr_assert_eq(frames, n, "tcpdump shows %u of the %u frames nica sent:\n%s", frames, n, all);
    cr_assert_not_null(strstr(all, "length 60"), "the first (60-byte) frame is not in the capture:\n%s", all);
}

/* ---- link status ---------------------------------------------------------------------- */

/* Poll the session's status until the link reads want, or fail. */
static void await_link(struct conn *k, uint16_t want, const char *what)
{
    uint64_t deadline = mono_ns() + (uint64_t)WAIT_MS * 1000000ull;
    struct moat_nic_status st = { 0 };
    for (;;) {
        int rc = moat_nic_status(k->s, &st);
        cr_assert_eq(rc, 0, "%s: status: %s", what, moat_strerror(rc));
        if (st.link_up == want)
            return;
        cr_assert_lt(mono_ns(), deadline, "%s: the cap still reports link %u after %d ms", what,
                     st.link_up, WAIT_MS);
        sched_yield();
    }
}

static void link_follows_the_device(const char *dev, const char *what)
{
    struct domain *d = boot_nic("nica", MAC_A, dev, "");
    boot_nic("nicb", MAC_B, "", "");
    struct conn a = nic_open("nica"), b = nic_open("nicb");
    cr_assert(a.info.flags & MOAT_NIC_F_LINK_STATUS, "%s: the cap does not report link status", what);
    struct pci_func *f = d->pci.slot[1];
    cr_assert(virtio_net_set_link(f, false), "%s: the device is not a virtio-net", what);
    await_link(&a, 0, what);
    cr_assert(virtio_net_set_link(f, true), "%s: link up", what);
    await_link(&a, 1, what);
    /* Frames flow again after the link came back. */
    struct stream ab = { &a, &b, MAC_B, MAC_A, 0, 0, 50, len_sweep, mono_ns() + 30000000000ull };
    while (stream_step(&ab, 10)) {
    }
    nic_close(&a);
    nic_close(&b);
}

Test(nic_conformance, link_changes_reach_the_cap_modern, .init = start, .fini = finish,
     .timeout = 120)
{
    link_follows_the_device("", "modern");
}

Test(nic_conformance, link_changes_reach_the_cap_legacy, .init = start, .fini = finish,
     .timeout = 120)
{
    link_follows_the_device("legacy=1:qsize=4096", "legacy");
}

/* ---- restart ---------------------------------------------------------------------------- */

static struct gvnic_stats gvnic_of(struct domain *d)
{
    struct gvnic_stats gs;
    cr_assert(gvnic_stats_get(d->pci.slot[1], &gs), "%s's device is not a gVNIC", d->cfg.name);
    return gs;
}

static uint64_t gvnic_pages(struct domain *d) { return gvnic_of(d).pages_registered; }

/* Stop d and check the driver undid its bring-up itself, in the device's
 * own commands (lists: the page lists it registered), before moat
 * quiesced the device; nothing is left registered. */
static void orderly_stop_of_gvnic(struct domain *d, uint64_t lists)
{
    struct gvnic_stats before = gvnic_of(d);
    uint64_t orderly = DSTAT_GET(d, orderly_stops);
    domain_request_stop(d);
    cr_assert(supervisor_wait(&sup, d, DOMAIN_TERMINAL, BOOT_MS), "%s did not stop", d->cfg.name);
    cr_assert_eq(tu_state(&sup, d), DOMAIN_STOPPED, "%s ended %s", d->cfg.name,
                 domain_state_name(tu_state(&sup, d)));
    cr_assert_eq(DSTAT_GET(d, orderly_stops), orderly + 1,
                 "the stop was not orderly (forced stops: %lu)",
                 (unsigned long)DSTAT_GET(d, forced_stops));
    struct gvnic_stats after = gvnic_of(d);
    cr_assert_eq(after.queues_destroyed - before.queues_destroyed, 2,
                 "the driver destroyed %lu queues, it created 2",
                 (unsigned long)(after.queues_destroyed - before.queues_destroyed));
    cr_assert_eq(after.page_lists_unregistered - before.page_lists_unregistered, lists,
                 "the driver unregistered %lu page lists, it registered %lu",
                 (unsigned long)(after.page_lists_unregistered - before.page_lists_unregistered),
                 (unsigned long)lists);
    cr_assert_eq(after.deconfigured - before.deconfigured, 1, "resources not deconfigured");
    cr_assert_eq(after.aq_failed, before.aq_failed, "a teardown command failed");
    cr_assert_eq(after.resets - before.resets, 1, "the admin queue was not released (resets %lu)",
                 (unsigned long)(after.resets - before.resets));
    cr_assert_eq(after.pages_registered, 0, "page lists left registered after the stop");
    struct broker_account acc = broker_account(&sup.broker, d->id);
    cr_assert_eq(acc.windows, 0, "%u DMA windows (%llu bytes) left after the stop", acc.windows,
                 (unsigned long long)acc.bytes);
}

/* A gVNIC domain killed mid-traffic: its device is quiesced (nothing it
 * registered survives), the new incarnation registers its lists once, and
 * the session carries on; a stopped domain leaves nothing registered. */
Test(nic_conformance, gvnic_crash_and_stop_leave_nothing_registered, .init = start,
     .fini = finish, .timeout = 180)
{
    struct domain *da = boot_nic_as(&GVNIC, "nica", MAC_A, "mtu=1500", "");
    boot_nic("nicb", MAC_B, "", "");
    struct conn a = nic_open("nica"), b = nic_open("nicb");
    const uint64_t one = gvnic_pages(da);
    cr_assert_gt(one, 0, "the driver registered no page list");
    struct stream ab = { &a, &b, MAC_B, MAC_A, 0, 0, 100, len_sweep, mono_ns() + 30000000000ull };
    while (stream_step(&ab, 10)) {
    }
    struct crash_info why = { .cause = CRASH_INJECTED };
    snprintf(why.detail, sizeof why.detail, "test: killed mid-traffic");
    domain_kill(da, &why);
    cr_assert(supervisor_wait(&sup, da, DOMAIN_STATE_BIT(DOMAIN_READY), BOOT_MS), "no restart");
    /* A session that only sends learns of the restart from its sends, long
     * before its ring could fill: a few frames, apart. */
    uint8_t fr[64];
    make_frame(fr, sizeof fr, MAC_A, MAC_A, 0xFFFF);   /* to itself: the switch drops it */
    struct moat_session_stats ss = { 0 };
    for (int i = 0; i < 8 && !ss.recoveries; i++) {
        int r = moat_nic_send(a.s, &(struct moat_frame){ fr, sizeof fr }, 1);
        cr_assert(r >= 0, "send after the restart: %s", moat_strerror(r));
        moat_session_stats(a.s, &ss);
        usleep(20000);
    }
    cr_assert_eq(ss.recoveries, 1, "8 sends over 160 ms did not notice the restart");
    struct moat_nic_status now;
    int rc = moat_nic_status(a.s, &now);
    cr_assert_eq(rc, 0, "status after the restart: %s", moat_strerror(rc));
    struct moat_frame none = { 0 };
    cr_assert_geq(moat_nic_recv(a.s, &none, 0, 0), 0, "post buffers after the recovery");
    cr_assert_eq(gvnic_pages(da), one, "%lu pages registered after the restart, one incarnation "
                 "registers %lu", (unsigned long)gvnic_pages(da), (unsigned long)one);
    struct gvnic_stats gs = gvnic_of(da);
    cr_assert(gs.queues_destroyed == 0 && gs.page_lists_unregistered == 0 && gs.deconfigured == 0,
              "a killed driver cannot have torn its device down; the quiesce must have done it");
    struct stream again = { &a, &b, MAC_B, MAC_A, 0, 0, 200, len_sweep, mono_ns() + 30000000000ull };
    while (stream_step(&again, 10)) {
    }
    nic_close(&a);
    nic_close(&b);
    orderly_stop_of_gvnic(da, 2);
}

/* An orderly stop in the middle of traffic (sessions open, frames on
 * their way): the sessions drain, the driver tears the device down in
 * the device's own commands, and the domain ends STOPPED by itself; the
 * client then learns the cap is down for good. */
Test(nic_conformance, gvnic_orderly_stop_mid_traffic, .init = start, .fini = finish,
     .timeout = 180)
{
    static const struct { const char *dev; uint64_t lists; } fmt[2] = {
        { "format=gqi-qpl:mtu=1500", 2 }, { "format=dqo-rda:mtu=1500", 0 } };
    for (int i = 0; i < 2; i++) {
        const char *name = i ? "gv1" : "gv0";
        struct domain *d = boot_nic_as(&GVNIC, name, MAC_A, fmt[i].dev, "");
        struct domain *v = boot_nic(i ? "vb1" : "vb0", MAC_B, "", "");
        struct conn a = nic_open(name), b = nic_open(i ? "vb1" : "vb0");
        struct stream ab = { &a, &b, MAC_B, MAC_A, 0, 0, 2000, len_sweep,
                             mono_ns() + 30000000000ull };
        for (int k = 0; k < 20 && stream_step(&ab, 10); k++) {
        }
        orderly_stop_of_gvnic(d, fmt[i].lists);
        uint8_t fr[64];
        make_frame(fr, sizeof fr, MAC_B, MAC_A, 0);
        int r = 0;
        for (int k = 0; k < 100 && r >= 0; k++)
            r = moat_nic_send(a.s, &(struct moat_frame){ fr, sizeof fr }, 1);
        cr_assert_eq(r, -MOAT_EDOWN, "a send after the stop: %s", moat_strerror(r));
        nic_close(&a);
        nic_close(&b);
        /* The virtio-net driver's orderly stop resets its device. */
        struct virtio_net_stats vs0, vs1;
        cr_assert(virtio_net_stats_get(v->pci.slot[1], &vs0));
        domain_request_stop(v);
        cr_assert(supervisor_wait(&sup, v, DOMAIN_TERMINAL, BOOT_MS), "%s did not stop",
                  v->cfg.name);
        cr_assert_eq(DSTAT_GET(v, orderly_stops), 1, "%s's stop was forced", v->cfg.name);
        cr_assert(virtio_net_stats_get(v->pci.slot[1], &vs1));
        cr_assert_eq(vs1.driver_resets - vs0.driver_resets, 1,
                     "the virtio-net driver did not reset its device when it stopped");
    }
}

/* A hostile gVNIC driver names private RAM in a page list. Under the
 * default policy the refused DMA (audited by the broker) fail-stops the
 * domain; under policy=audit the device answers PERMISSION_DENIED and the
 * driver gives up on its own. Either way nothing outside the windows is
 * touched. */
static struct domain *boot_wild(const char *name, const char *policy)
{
    char spec[512];
    snprintf(spec, sizeof spec, "name=%s kernel=%s mem=64M dma=16M restart=never %s dev=gvnic "
             "args=\"wild_qpl=1\"", name, tu_guest("gvnic"), policy);
    struct domain_config dc;
    cr_assert(config_parse_domain(spec, &dc, err, sizeof err), "%s", err);
    struct domain *d = supervisor_add(&sup, &dc, err, sizeof err);
    cr_assert_not_null(d, "%s", err);
    cr_assert(domain_start(d, err, sizeof err), "%s", err);
    cr_assert(supervisor_wait(&sup, d, DOMAIN_TERMINAL, BOOT_MS), "the hostile driver kept going");
    cr_assert_eq(tu_state(&sup, d), DOMAIN_CRASHED);
    cr_assert_geq(DSTAT_GET(d, dma_refused), 1, "no refused DMA was counted");
    struct gvnic_stats gs;
    cr_assert(gvnic_stats_get(d->pci.slot[1], &gs));
    cr_assert_geq(gs.dma_refusals, 1, "the device did not count the refusal");
    /* A crash in the middle of bring-up leaves the device reset: nothing
     * registered, no window. */
    cr_assert_eq(gs.pages_registered, 0, "page lists left registered after the crash");
    cr_assert_eq(broker_account(&sup.broker, d->id).windows, 0, "windows left after the crash");
    return d;
}

Test(nic_conformance, gvnic_page_list_outside_the_windows_is_refused, .init = start,
     .fini = finish, .timeout = 120)
{
    struct domain *d = boot_wild("wild", "");
    cr_assert(strstr(d->crash.detail, "outside every window"), "crash: %s", d->crash.detail);
    d = boot_wild("wilder", "policy=audit");
    cr_assert(strstr(d->crash.detail, "REGISTER_PAGE_LIST"), "crash: %s", d->crash.detail);
}

Test(nic_conformance, a_restarted_nic_domain_serves_again, .init = start, .fini = finish,
     .timeout = 180)
{
    struct domain *da = boot_nic("nica", MAC_A, "", "");
    boot_nic("nicb", MAC_B, "", "");
    struct conn a = nic_open("nica"), b = nic_open("nicb");
    struct stream ab = { &a, &b, MAC_B, MAC_A, 0, 0, 100, len_sweep, mono_ns() + 30000000000ull };
    while (stream_step(&ab, 10)) {
    }
    int rc;
    cr_assert(domain_restart(da, err, sizeof err), "restart nica: %s", err);
    /* The session follows nica to its new incarnation by itself. */
    struct moat_nic_status now;
    rc = moat_nic_status(a.s, &now);
    cr_assert_eq(rc, 0, "status after the restart: %s", moat_strerror(rc));
    struct moat_session_stats st;
    moat_session_stats(a.s, &st);
    cr_assert_eq(st.recoveries, 1, "recoveries %llu", (unsigned long long)st.recoveries);
    struct moat_frame none = { 0 };
    cr_assert_geq(moat_nic_recv(a.s, &none, 0, 0), 0, "post buffers after the recovery");
    struct stream again = { &a, &b, MAC_B, MAC_A, 0, 0, 200, len_sweep, mono_ns() + 30000000000ull };
    struct stream back = { &b, &a, MAC_A, MAC_B, 0, 0, 200, len_sweep, mono_ns() + 30000000000ull };
    bool more;
    do {
        more = stream_step(&again, 1);
        more |= stream_step(&back, 1);
    } while (more);
    nic_close(&a);
    nic_close(&b);
}
