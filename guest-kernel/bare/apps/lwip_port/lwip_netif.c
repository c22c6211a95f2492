/* lwIP's interface over a Nic session (contract in lwip_netif.h). */
#include "lwip_netif.h"
#include "dd.h"
#include "lwip/dhcp.h"
#include "lwip/etharp.h"
#include "lwip/init.h"
#include "lwip/pbuf.h"
#include "lwip/timeouts.h"
#include "netif/ethernet.h"

#define LN_WHAT_TX 0x100u
#define ETH_MIN_FRAME 60u               /* without the FCS: shorter frames are padded */

/* Post receive buffer i; while the server stays down it waits (sc_submit
 * would fail it at once, inside the call, before its slot is known). */
static void post_rx(struct lwip_nic *n, uint32_t i)
{
    if (sc_server_down(&n->c)) {
        n->rx_unposted[i] = true;
        return;
    }
    struct moat_sqe e = { .op = MOAT_NIC_RX, .blocks = LN_BUF, .buf_off = (uint64_t)i * LN_BUF };
    int s = sc_submit(&n->c, &e, true);
    if (s < 0)
        dd_panic("lwip_netif: no request slot for receive buffer %u", i);
    n->slot_what[s] = i;
}

static err_t link_output(struct netif *netif, struct pbuf *p)
{
    struct lwip_nic *n = netif->state;
    if (p->tot_len > n->c.info.nic.max_frame)
        return ERR_IF;
    if (sc_server_down(&n->c)) {        /* dropped, as a NIC without link drops it */
        n->tx_dropped++;
        return ERR_IF;
    }
    for (uint32_t j = 0; j < LN_TX_BUFS; j++) {
        if (n->tx_busy[j])
            continue;
        uint64_t off = (uint64_t)(LN_RX_BUFS + j) * LN_BUF;
        uint8_t *buf = n->c.data + off;
        uint32_t len = pbuf_copy_partial(p, buf, p->tot_len, 0);
        if (len < ETH_MIN_FRAME) {
            memset(buf + len, 0, ETH_MIN_FRAME - len);
            len = ETH_MIN_FRAME;
        }
        struct moat_sqe e = { .op = MOAT_NIC_TX, .blocks = len, .buf_off = off };
        int s = sc_submit(&n->c, &e, false);
        if (s < 0)
            break;
        n->tx_busy[j] = true;
        n->slot_what[s] = LN_WHAT_TX | j;
        n->tx_frames++;
        return ERR_OK;
    }
    n->tx_full++;
    return ERR_MEM;
}

/* A frame the server delivered: into a pbuf (the buffer is posted again at
 * once), then up the stack. */
static void receive(struct lwip_nic *n, uint32_t i, uint32_t len)
{
    struct pbuf *p = NULL;
    if (len < MOAT_NIC_ETH_HDR || len > n->c.info.nic.max_frame)
        n->rx_bad++;
    else if (!(p = pbuf_alloc(PBUF_RAW, (u16_t)len, PBUF_POOL)))
        n->rx_dropped++;
    else
        pbuf_take(p, n->c.data + (uint64_t)i * LN_BUF, (u16_t)len);
    post_rx(n, i);
    if (!p)
        return;
    n->rx_frames++;
    if (n->netif.input(p, &n->netif) != ERR_OK)
        pbuf_free(p);
}

static void done(void *ctx, unsigned slot, uint32_t status, uint32_t len)
{
    struct lwip_nic *n = ctx;
    uint32_t what = n->slot_what[slot];
    if (what & LN_WHAT_TX) {
        n->tx_busy[what & ~LN_WHAT_TX] = false;
        n->tx_freed = true;
        if (status != MOAT_ST_OK)
            n->tx_dropped++;
        return;
    }
    if (status == MOAT_ST_CANCELED)     /* the session closes: nothing more comes */
        return;
    if (status == MOAT_ST_OK)
        receive(n, what, len);
    else
        n->rx_unposted[what] = true;    /* not from here: sc_submit may fail it at once */
}

static err_t netif_setup(struct netif *netif)
{
    struct lwip_nic *n = netif->state;
    netif->name[0] = 'm';
    netif->name[1] = 't';
    netif->output = etharp_output;
    netif->linkoutput = link_output;
    netif->mtu = n->c.info.nic.mtu;
    netif->hwaddr_len = ETH_HWADDR_LEN;
    memcpy(netif->hwaddr, n->c.info.nic.mac, ETH_HWADDR_LEN);
    netif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET;
    netif_set_hostname(netif, n->name);
    return ERR_OK;
}

static void status_changed(struct netif *netif)
{
    struct lwip_nic *n = netif->state;
    if (!dhcp_supplied_address(netif))
        return;
    const ip4_addr_t *a = netif_ip4_addr(netif), *m = netif_ip4_netmask(netif),
                     *g = netif_ip4_gw(netif);
    dd_log("lwIP: address %u.%u.%u.%u (mask %u.%u.%u.%u, gateway %u.%u.%u.%u) by DHCP, "
           "through %s", ip4_addr1(a), ip4_addr2(a), ip4_addr3(a), ip4_addr4(a),
           ip4_addr1(m), ip4_addr2(m), ip4_addr3(m), ip4_addr4(m), ip4_addr1(g), ip4_addr2(g),
           ip4_addr3(g), ip4_addr4(g), n->c.cap);
}

/* lwIP's timers, and receive buffers that failed posted again once the
 * server serves the session. */
static bool netif_poll(void *ctx)
{
    struct lwip_nic *n = ctx;
    bool work = false;
    sys_check_timeouts();       /* timers are not work: the loop may sleep until the tick */
    for (uint32_t i = 0; i < LN_RX_BUFS && !sc_server_down(&n->c); i++)
        if (n->rx_unposted[i]) {
            n->rx_unposted[i] = false;
            post_rx(n, i);
            work = true;
        }
    return work;
}

bool lwip_nic_open(struct lwip_nic *n, const char *cap, uint64_t timeout_ns)
{
    if (!sc_open(&n->c, cap, MOAT_CAP_NIC, timeout_ns, done, n))
        return false;
    if (n->c.info.nic.max_frame > LN_BUF ||
        (uint64_t)(LN_RX_BUFS + LN_TX_BUFS) * LN_BUF > n->c.info.data_size) {
        dd_log("lwip_netif: frames of %u bytes do not fit %u buffers of %u bytes in a session "
               "of %lu", n->c.info.nic.max_frame, SC_INFLIGHT, LN_BUF, n->c.info.data_size);
        return false;
    }
    lwip_init();
    if (!netif_add(&n->netif, IP4_ADDR_ANY4, IP4_ADDR_ANY4, IP4_ADDR_ANY4, n, netif_setup,
                   ethernet_input))
        return false;
    netif_set_status_callback(&n->netif, status_changed);
    netif_set_default(&n->netif);
    netif_set_up(&n->netif);
    netif_set_link_up(&n->netif);
    for (uint32_t i = 0; i < LN_RX_BUFS; i++)
        post_rx(n, i);
    if (!dd_poll_add(netif_poll, n))
        return false;
    return dhcp_start(&n->netif) == ERR_OK;
}

bool lwip_nic_up(const struct lwip_nic *n) { return dhcp_supplied_address(&n->netif); }

bool lwip_nic_tx_space(struct lwip_nic *n)
{
    bool freed = n->tx_freed;
    n->tx_freed = false;
    return freed;
}
