/* netcheck — an app domain of the bare monitor that checks a Nic another
 * domain serves, through a session (session_client.h; frames by
 * moat/netpkt.h, which treats every frame as hostile), with nothing but
 * the network QEMU's user mode (or a cloud's) provides: a DHCP lease
 * (DISCOVER, OFFER, REQUEST, ACK), the gateway's MAC by ARP, then ICMP
 * echoes to the gateway. Its words (after the monitor's): cap=DOMAIN.CAP
 * (the Nic, required), pings=N (default 3).
 * Receive buffers stay posted: after a server restart they are posted
 * again; a frame being sent then is dropped, and the step's retry (every
 * second, 10 tries a step) sends it again. While the server stays down
 * (its breaker open) the buffers that failed wait, and are posted again
 * once a restart from the console serves the session.
 * Console: "netcheck NAME: N of M pings answered" every 100, then
 * "PASS: ..." and an orderly exit (code 0), or "FAIL: ..." and exit 1. */
#include "dd.h"
#include "gk/platform.h"
#include "gk/sys.h"
#include "moat/netpkt.h"
#include "session_client.h"

#define RETRY_NS 1000000000ull
#define TRIES 10u
#define RX_BUFS 8u
#define TX_BUFS 4u
#define BUF 2048u                       /* a buffer: at least the Nic's largest frame */
#define OPEN_TIMEOUT_NS (30ull * 1000000000ull)
#define WHAT_TX 0x100u                  /* slot_what: TX buffer j is WHAT_TX | j */
#define ECHO_ID 0x6d74u                 /* "mt" */

enum { NT_DISCOVER, NT_REQUEST, NT_ARP, NT_PING, NT_DONE };

static struct net_test {
    struct sclient c;
    const char *name;
    char cap[64];
    int phase;
    uint32_t xid, ip, server, gateway, mask, tries, pongs, pings;
    uint8_t mac[6], gw_mac[6];
    uint64_t sent_ns, best_ns, t0, frames;
    uint16_t seq;
    bool tx_busy[TX_BUFS];
    bool rx_unposted[RX_BUFS];          /* failed (server down): posted again by net_poll */
    uint32_t slot_what[SC_INFLIGHT];
} t;

/* ---- the session ---------------------------------------------------------------------- */

/* Post receive buffer i; while the server stays down it waits (sc_submit
 * would fail it at once, inside the call, before its slot is known). */
static void post_rx(uint32_t i)
{
    if (sc_server_down(&t.c)) {
        t.rx_unposted[i] = true;
        return;
    }
    struct moat_sqe e = { .op = MOAT_NIC_RX, .blocks = BUF, .buf_off = (uint64_t)i * BUF };
    int s = sc_submit(&t.c, &e, true);
    if (s < 0)
        dd_panic("netcheck: no request slot for receive buffer %u", i);
    t.slot_what[s] = i;
}

/* Send a frame (the builders pad it); dropped when every buffer is in
 * flight: the step's retry sends it again. */
static void send(const uint8_t *f, uint32_t len)
{
    if (sc_server_down(&t.c))           /* dropped; the step's retry sends it again */
        return;
    for (uint32_t j = 0; j < TX_BUFS; j++) {
        if (t.tx_busy[j])
            continue;
        uint64_t off = (uint64_t)(RX_BUFS + j) * BUF;
        memcpy(t.c.data + off, f, len);
        struct moat_sqe e = { .op = MOAT_NIC_TX, .blocks = len, .buf_off = off };
        int s = sc_submit(&t.c, &e, false);
        if (s < 0)
            return;
        t.tx_busy[j] = true;
        t.slot_what[s] = WHAT_TX | j;
        t.frames++;
        return;
    }
}

/* ---- what goes out (moat/netpkt.h builds the frames) ---------------------------------- */

static void next(int phase)
{
    t.phase = phase;
    t.tries = 0;
    t.sent_ns = 0;
}

static void send_step(void)
{
    uint8_t f[NETPKT_FRAME_MAX];
    size_t len = 0;
    if (t.phase == NT_DISCOVER || t.phase == NT_REQUEST)
        len = netpkt_dhcp_client(f, sizeof f, t.phase == NT_DISCOVER ? NETPKT_DHCP_DISCOVER
                                                                      : NETPKT_DHCP_REQUEST,
                                 t.mac, t.xid, t.ip, t.server);
    else if (t.phase == NT_ARP)
        len = netpkt_arp_request(f, t.mac, t.ip, t.gateway);
    else
        len = netpkt_icmp_echo(f, sizeof f, t.mac, t.gw_mac, t.ip, t.gateway, ECHO_ID, ++t.seq,
                               "moat bare ping", 14);
    if (len)
        send(f, (uint32_t)len);
}

/* ---- what comes back ------------------------------------------------------------------------ */

static _Noreturn void pass(void)
{
    dd_log("netcheck %s: PASS: DHCP lease %u.%u.%u.%u (mask %u.%u.%u.%u) from %u.%u.%u.%u, "
           "gateway answered %u pings, best round trip %lu us, in %lu ms, through %s; %lu frames "
           "sent, %lu requests published again and %lu dropped after %lu server restart%s and "
           "%lu broken session%s", t.name, t.ip >> 24, t.ip >> 16 & 255, t.ip >> 8 & 255,
           t.ip & 255, t.mask >> 24, t.mask >> 16 & 255, t.mask >> 8 & 255, t.mask & 255,
           t.server >> 24, t.server >> 16 & 255, t.server >> 8 & 255, t.server & 255, t.pings,
           t.best_ns / 1000, (dd_now_ns() - t.t0) / 1000000, t.cap, t.frames, t.c.resubmitted,
           t.c.dropped, t.c.fresh_rings, t.c.fresh_rings == 1 ? "" : "s", t.c.reopened,
           t.c.reopened == 1 ? "" : "s");
    sys_exit(0);
}

static void net_rx(const uint8_t *f, uint32_t len)
{
    struct netpkt_dhcp_reply r;
    uint16_t seq;
    if ((t.phase == NT_DISCOVER || t.phase == NT_REQUEST) &&
        netpkt_dhcp_reply(f, len, t.mac, t.xid, &r)) {
        if (t.phase == NT_DISCOVER && r.type == NETPKT_DHCP_OFFER) {
            t.ip = r.yiaddr;
            t.server = r.server_id;
            next(NT_REQUEST);
        } else if (t.phase == NT_REQUEST && r.type == NETPKT_DHCP_ACK) {
            t.gateway = r.router ? r.router : r.server_id;
            t.mask = r.mask;
            next(NT_ARP);
        }
    } else if (t.phase == NT_ARP && netpkt_arp_reply(f, len, t.mac, t.ip, t.gateway, t.gw_mac)) {
        next(NT_PING);
    } else if (t.phase == NT_PING &&
               netpkt_icmp_reply(f, len, t.mac, t.ip, t.gateway, ECHO_ID, &seq) && seq == t.seq) {
        uint64_t rtt = dd_now_ns() - t.sent_ns;
        if (!t.best_ns || rtt < t.best_ns)
            t.best_ns = rtt;
        if (++t.pongs % 100 == 0 && t.pongs < t.pings)
            dd_log("netcheck %s: %u of %u pings answered", t.name, t.pongs, t.pings);
        if (t.pongs == t.pings)
            pass();
        else
            next(NT_PING);
    }
}

static bool net_poll(void *ctx)
{
    (void)ctx;
    for (uint32_t i = 0; i < RX_BUFS && !sc_server_down(&t.c); i++)
        if (t.rx_unposted[i]) {
            t.rx_unposted[i] = false;
            post_rx(i);
        }
    if (t.phase == NT_DONE)
        return false;
    uint64_t now = dd_now_ns();
    if (t.sent_ns && now - t.sent_ns < RETRY_NS)
        return false;
    if (t.tries++ == TRIES) {
        static const char *const what[] = { "no DHCP offer", "no DHCP ack",
                                            "no ARP reply from the gateway", "no echo reply" };
        dd_log("netcheck %s: FAIL: %s after %u tries, through %s", t.name, what[t.phase], TRIES,
               t.cap);
        sys_exit(1);
    }
    t.sent_ns = now;
    send_step();
    return true;
}


static void done(void *ctx, unsigned slot, uint32_t status, uint32_t len)
{
    (void)ctx;
    uint32_t what = t.slot_what[slot];
    if (what & WHAT_TX) {
        t.tx_busy[what & ~WHAT_TX] = false;
        return;
    }
    if (status == MOAT_ST_CANCELED)     /* the session closes: nothing more comes */
        return;
    if (status != MOAT_ST_OK) {         /* not from here: sc_submit may fail it at once */
        t.rx_unposted[what] = true;
        return;
    }
    net_rx(t.c.data + (uint64_t)what * BUF, len);
    post_rx(what);
}

void domain_main(const char *args)
{
    t.name = platform_boot_info()->name;
    if (!dd_arg(args, "cap", t.cap, sizeof t.cap))
        dd_panic("netcheck: give the Nic to check: cap=DOMAIN.CAP");
    t.pings = dd_arg_u32(args, "pings", 3, 1, 1000000);
    if (!sc_open(&t.c, t.cap, MOAT_CAP_NIC, OPEN_TIMEOUT_NS, done, NULL))
        sys_exit(1);
    if (t.c.info.nic.max_frame > BUF || (uint64_t)(RX_BUFS + TX_BUFS) * BUF > t.c.info.data_size)
        dd_panic("netcheck: frames of %u bytes do not fit its %u-byte buffers in the session",
                 t.c.info.nic.max_frame, BUF);
    memcpy(t.mac, t.c.info.nic.mac, 6);
    for (uint32_t i = 0; i < RX_BUFS; i++)
        post_rx(i);
    t.phase = NT_DISCOVER;
    t.xid = (uint32_t)dd_now_ns() ^ 0x6d6f6174u;
    t.t0 = dd_now_ns();
    if (!dd_poll_add(net_poll, NULL))
        dd_panic("netcheck: no free poller");
    dd_ready();
    dd_run();
}
