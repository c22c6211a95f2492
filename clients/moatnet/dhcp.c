/* A DHCP client exchange over a Nic session (contract in dhcp.h). */
#include "dhcp.h"
#include <time.h>
#include "cliutil/cli.h"

/* Send one client message and wait step_ms for the server's answer to it. */
static int step(struct moat_session *s, const uint8_t mac[6], enum netpkt_dhcp_type type,
                uint32_t xid, uint32_t req_ip, uint32_t server, unsigned step_ms,
                struct netpkt_dhcp_reply *r)
{
    static uint8_t f[NETPKT_FRAME_MAX];
    size_t len = netpkt_dhcp_client(f, sizeof f, type, mac, xid, req_ip, server);
    struct moat_frame fr = { .data = f, .len = (uint32_t)len };
    int rc = moat_nic_send(s, &fr, 1);
    if (rc < 0)
        return rc;
    uint64_t deadline = cli_now_ns() + (uint64_t)step_ms * 1000000u;
    for (;;) {
        uint64_t t = cli_now_ns();
        if (t >= deadline)
            return -MOAT_ETIMEDOUT;
        fr = (struct moat_frame){ .data = f, .len = sizeof f };
        int n = moat_nic_recv(s, &fr, 1, (int)((deadline - t) / 1000000u + 1));
        if (n < 0 && n != -MOAT_ETIMEDOUT)
            return n;
        if (n == 1 && fr.len <= sizeof f && netpkt_dhcp_reply(f, fr.len, mac, xid, r))
            return 0;
    }
}

static int step_retried(struct moat_session *s, const uint8_t mac[6],
                        enum netpkt_dhcp_type type, uint32_t xid, uint32_t req_ip,
                        uint32_t server, unsigned step_ms, unsigned tries,
                        struct netpkt_dhcp_reply *r)
{
    int rc = -MOAT_ETIMEDOUT;
    for (unsigned i = 0; i < tries && rc == -MOAT_ETIMEDOUT; i++)
        rc = step(s, mac, type, xid, req_ip, server, step_ms, r);
    return rc;
}

int dhcp_obtain(struct moat_session *s, const uint8_t mac[6], unsigned step_ms, unsigned tries,
                void (*offer)(const struct netpkt_dhcp_reply *r, void *ctx), void *ctx,
                struct dhcp_lease *out)
{
    struct netpkt_dhcp_reply r;
    uint32_t xid = (uint32_t)cli_now_ns() ^ (uint32_t)(mac[4] << 8 | mac[5]);
    int rc = step_retried(s, mac, NETPKT_DHCP_DISCOVER, xid, 0, 0, step_ms, tries, &r);
    if (rc)
        return rc;
    if (r.type != NETPKT_DHCP_OFFER)
        return -MOAT_EPROTO;
    if (offer)
        offer(&r, ctx);
    uint32_t offered = r.yiaddr, server = r.server_id;
    rc = step_retried(s, mac, NETPKT_DHCP_REQUEST, xid, offered, server, step_ms, tries, &r);
    if (rc)
        return rc;
    if (r.type != NETPKT_DHCP_ACK || r.yiaddr != offered)
        return -MOAT_EPROTO;
    *out = (struct dhcp_lease){ .ip = r.yiaddr, .mask = r.mask ? r.mask : 0xffffff00u,
                                .router = r.router ? r.router : server, .server = server,
                                .lease_s = r.lease_s, .xid = xid };
    return 0;
}
