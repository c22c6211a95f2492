/* httpd — an app domain of the bare monitor: a web server on lwIP (built
 * freestanding from Debian's lwIP source, lwip_port/lwipopts.h) over a Nic cap
 * another domain serves (lwip_port/lwip_netif.h), reached from outside through
 * whatever forwards to its address (QEMU's user network: hostfwd). It
 * serves two resources, GET and HEAD (moat/http_parse.h parses every
 * request as hostile input), one byte range honoured (resumed downloads):
 *   /      a line of text: what is served;
 *   /blob  size= bytes of the reproducible stream of seed=
 *          (moat/pattern.h), application/octet-stream.
 * Every answer closes its connection. At most HTTPD_CONNS connections at
 * once (503 beyond); a client that has not sent its request within
 * HEAD_TIMEOUT_MS gets 408; one whose transfer makes no progress for
 * STALL_TIMEOUT_MS is aborted. A server restart under a transfer loses
 * the frames then in flight and TCP sends them again: the transfer goes
 * on. One log line per answer.
 * Words (after the monitor's): cap=DOMAIN.CAP (the Nic, required),
 * port=N (80), size=BYTES (10M; K, M, G suffixes), seed=N (1). */
#include "dd.h"
#include "gk/console.h"
#include "gk/platform.h"
#include "gk/sys.h"
#include "lwip/stats.h"
#include "lwip/tcp.h"
#include "lwip_port/lwip_netif.h"
#include "moat/http_parse.h"
#include "moat/pattern.h"

#define HTTPD_CONNS 4u
#define OPEN_TIMEOUT_NS (30ull * 1000000000ull)
#define HEAD_TIMEOUT_MS 10000u
#define STALL_TIMEOUT_MS 60000u
/* The side that closes a TCP connection first keeps it in TIME_WAIT for
 * two minutes, and lwIP answers a new SYN that meets one with an ACK
 * rather than a connection: a server that closed first would stop taking
 * clients whose port comes round again. HTTP clients close once they
 * have the body (Content-Length); one that has not within LINGER_MS
 * after the server queued it all is closed on. */
#define LINGER_MS 2000u
#define POLL_HALF_SECONDS 2u            /* tcp_poll's interval: 1 s */
#define CHUNK 4096u

/* READING the request head; SENDING the answer; LINGER: all of it queued,
 * waiting for the client to close first (below); CLOSING: a close lwIP
 * could not take yet. */
enum conn_state { C_FREE, C_READING, C_SENDING, C_LINGER, C_CLOSING };

struct conn {
    enum conn_state state;
    struct tcp_pcb *pcb;
    char head[HTTP_HEAD_MAX];
    size_t head_len;
    struct http_request req;
    int status;
    const char *what;                   /* the resource's name, for the log */
    uint64_t off, end;                  /* body bytes still to queue: [off, end) */
    uint64_t body_len, t0_ms, progress_ms;
    bool peer_closed;                   /* the client sent its FIN */
    uint8_t peer[4];
    uint16_t peer_port;
};

static struct {
    struct lwip_nic nic;
    const char *name;
    uint16_t port;
    uint64_t size, seed;
    struct conn conns[HTTPD_CONNS];
    bool announced;
    uint64_t answered, refused_busy, aborted;
} h;

static uint8_t chunk[CHUNK];
static bool aborted;                    /* a callback aborted its pcb: it returns ERR_ABRT */

static uint64_t now_ms(void) { return dd_now_ns() / 1000000; }

static void detach(struct conn *c)
{
    tcp_arg(c->pcb, NULL);
    tcp_recv(c->pcb, NULL);
    tcp_sent(c->pcb, NULL);
    tcp_err(c->pcb, NULL);
    tcp_poll(c->pcb, NULL, 0);
}

static void log_answer(const struct conn *c, const char *how)
{
    uint64_t ms = now_ms() - c->t0_ms;
    uint64_t sent = c->off - (c->end - c->body_len);
    dd_log("httpd: %u.%u.%u.%u:%u %s %s %d, %lu of %lu bytes in %lu ms (%lu KiB/s)%s; "
           "TCP segments sent again so far: %u", c->peer[0], c->peer[1], c->peer[2],
           c->peer[3], c->peer_port, c->req.method == HTTP_HEAD ? "HEAD" : "GET", c->what,
           c->status, sent, c->body_len, ms, ms ? sent * 1000 / 1024 / ms : 0, how,
           (unsigned)lwip_stats.mib2.tcpretranssegs);
}

/* Close: lwIP sends what it holds, then FIN. A close lwIP cannot take
 * now (no memory) is tried again from the poll callback. */
static void finish(struct conn *c)
{
    c->state = C_CLOSING;
    if (tcp_close(c->pcb) != ERR_OK)
        return;
    detach(c);
    c->state = C_FREE;
}

static void abort_conn(struct conn *c, const char *why)
{
    if (c->state == C_SENDING)
        log_answer(c, why);
    h.aborted++;
    aborted = true;
    detach(c);
    tcp_abort(c->pcb);
    c->state = C_FREE;
}

/* Queue as much of the body as lwIP takes now. */
static void pump(struct conn *c)
{
    while (c->off < c->end) {
        uint64_t n = c->end - c->off;
        u16_t room = tcp_sndbuf(c->pcb);
        if (n > CHUNK)
            n = CHUNK;
        if (n > room)
            n = room;
        if (n == 0 || tcp_sndqueuelen(c->pcb) >= TCP_SND_QUEUELEN - 4)
            break;
        moat_pattern_fill(chunk, c->off, (size_t)n, h.seed);
        uint8_t more = c->off + n < c->end ? TCP_WRITE_FLAG_MORE : 0;
        if (tcp_write(c->pcb, chunk, (u16_t)n, TCP_WRITE_FLAG_COPY | more) != ERR_OK)
            break;
        c->off += n;
    }
    tcp_output(c->pcb);
    if (c->off == c->end) {
        log_answer(c, "");
        h.answered++;
        c->progress_ms = now_ms();
        if (c->peer_closed)
            finish(c);
        else
            c->state = C_LINGER;
    }
}

/* The answer's head; the body (if any: not for HEAD) follows by pump. */
static void answer(struct conn *c, int status)
{
    char head[320];
    uint64_t off = 0, len = 0;
    const char *type = "text/plain; charset=utf-8";
    char body[160];
    const uint8_t *inline_body = NULL;
    c->what = c->req.path[0] ? c->req.path : "(unparsed)";
    if (status == 0 && !strcmp(c->req.path, "/blob")) {
        status = http_range_select(&c->req, h.size, &off, &len);
        type = "application/octet-stream";
    } else if (status == 0 && !strcmp(c->req.path, "/")) {
        status = 200;
        len = (uint64_t)ksnprintf(body, sizeof body, "moat bare httpd %s: /blob is %lu bytes "
                                  "(the pattern of seed %lu)\n", h.name, h.size, h.seed);
        inline_body = (const uint8_t *)body;
    } else if (status == 0) {
        status = 404;
    }
    if (status != 200 && status != 206) {
        len = (uint64_t)ksnprintf(body, sizeof body, "%d %s\n", status, http_reason(status));
        inline_body = (const uint8_t *)body;
        type = "text/plain; charset=utf-8";
    }
    int n = ksnprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nServer: moat-bare-httpd\r\n"
                      "Content-Type: %s\r\nContent-Length: %lu\r\nAccept-Ranges: bytes\r\n",
                      status, http_reason(status), type, len);
    if (status == 206)
        n += ksnprintf(head + n, sizeof head - (size_t)n, "Content-Range: bytes %lu-%lu/%lu\r\n",
                       off, off + len - 1, h.size);
    else if (status == 416)
        n += ksnprintf(head + n, sizeof head - (size_t)n, "Content-Range: bytes */%lu\r\n",
                       h.size);
    n += ksnprintf(head + n, sizeof head - (size_t)n, "Connection: close\r\n\r\n");
    c->status = status;
    c->t0_ms = c->progress_ms = now_ms();
    bool body_too = c->req.method == HTTP_GET;
    if (tcp_write(c->pcb, head, (u16_t)n, TCP_WRITE_FLAG_COPY) != ERR_OK) {
        abort_conn(c, ": no room for the head");
        return;
    }
    if (inline_body && body_too && tcp_write(c->pcb, inline_body, (u16_t)len,
                                             TCP_WRITE_FLAG_COPY) != ERR_OK) {
        abort_conn(c, ": no room for the body");
        return;
    }
    c->state = C_SENDING;
    c->body_len = inline_body || !body_too ? 0 : len;
    c->off = off;
    c->end = off + c->body_len;
    pump(c);
}

static err_t on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
    struct conn *c = arg;
    (void)pcb;
    aborted = false;
    if (!c) {
        if (p)
            pbuf_free(p);
        return ERR_OK;
    }
    if (!p || err != ERR_OK) {          /* the client closed its side */
        if (p)
            pbuf_free(p);
        c->peer_closed = true;
        if (c->state == C_READING && c->head_len)
            answer(c, 400);             /* a request cut short */
        else if (c->state == C_READING || c->state == C_LINGER)
            finish(c);                  /* (still SENDING: what is left goes out first) */
        return aborted ? ERR_ABRT : ERR_OK;
    }
    tcp_recved(c->pcb, p->tot_len);
    if (c->state == C_READING) {
        size_t room = sizeof c->head - c->head_len;
        size_t n = p->tot_len < room ? p->tot_len : room;
        pbuf_copy_partial(p, c->head + c->head_len, (u16_t)n, 0);
        c->head_len += n;
        size_t head_len;
        int rc = http_parse(c->head, c->head_len, &c->req, &head_len);
        if (rc != 1)
            answer(c, rc);
    }
    pbuf_free(p);                       /* after the head: nothing more is read */
    return aborted ? ERR_ABRT : ERR_OK;
}

static err_t on_sent(void *arg, struct tcp_pcb *pcb, u16_t len)
{
    struct conn *c = arg;
    (void)pcb;
    (void)len;
    if (c && c->state == C_SENDING) {
        c->progress_ms = now_ms();
        pump(c);
    }
    return ERR_OK;
}

static void on_err(void *arg, err_t err)
{
    struct conn *c = arg;               /* lwIP has freed the pcb */
    if (!c)
        return;
    if (c->state == C_SENDING)
        log_answer(c, err == ERR_RST ? ": reset by the client" : ": the connection failed");
    c->state = C_FREE;
}

static err_t on_poll(void *arg, struct tcp_pcb *pcb)
{
    struct conn *c = arg;
    (void)pcb;
    if (!c)
        return ERR_OK;
    uint64_t t = now_ms();
    aborted = false;
    if (c->state == C_CLOSING || (c->state == C_LINGER && t - c->progress_ms > LINGER_MS))
        finish(c);
    else if (c->state == C_READING && t - c->t0_ms > HEAD_TIMEOUT_MS)
        answer(c, 408);
    else if (c->state == C_SENDING && t - c->progress_ms > STALL_TIMEOUT_MS)
        abort_conn(c, ": no progress (aborted)");
    return aborted ? ERR_ABRT : ERR_OK;
}

static err_t on_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
    (void)arg;
    if (err != ERR_OK || !pcb)
        return ERR_VAL;
    struct conn *c = NULL;
    for (unsigned i = 0; i < HTTPD_CONNS && !c; i++)
        if (h.conns[i].state == C_FREE)
            c = &h.conns[i];
    if (!c) {
        static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                   "Connection: close\r\n\r\n";
        h.refused_busy++;
        if (tcp_write(pcb, busy, sizeof busy - 1, 0) != ERR_OK || tcp_close(pcb) != ERR_OK) {
            tcp_abort(pcb);             /* no memory even for that: a reset */
            return ERR_ABRT;
        }
        return ERR_OK;
    }
    *c = (struct conn){ .state = C_READING, .pcb = pcb, .t0_ms = now_ms(),
                        .peer_port = pcb->remote_port };
    uint32_t a = ip4_addr_get_u32(ip_2_ip4(&pcb->remote_ip));
    for (int i = 0; i < 4; i++)
        c->peer[i] = (uint8_t)(a >> 8 * i);
    tcp_arg(pcb, c);
    tcp_recv(pcb, on_recv);
    tcp_sent(pcb, on_sent);
    tcp_err(pcb, on_err);
    tcp_poll(pcb, on_poll, POLL_HALF_SECONDS);
    return ERR_OK;
}

static bool httpd_poll(void *ctx)
{
    (void)ctx;
    if (!h.announced && lwip_nic_up(&h.nic)) {
        const ip4_addr_t *a = netif_ip4_addr(&h.nic.netif);
        dd_log("httpd: serving http://%u.%u.%u.%u:%u/ (/blob: %lu bytes, seed %lu)",
               ip4_addr1(a), ip4_addr2(a), ip4_addr3(a), ip4_addr4(a), h.port, h.size, h.seed);
        h.announced = true;
    }
    if (!lwip_nic_tx_space(&h.nic))
        return false;
    for (unsigned i = 0; i < HTTPD_CONNS; i++)
        if (h.conns[i].state == C_SENDING)
            pump(&h.conns[i]);
    return false;
}

void domain_main(const char *args)
{
    char cap[64];
    h.name = platform_boot_info()->name;
    h.nic.name = h.name;
    if (!dd_arg(args, "cap", cap, sizeof cap))
        dd_panic("httpd: give the Nic to serve on: cap=DOMAIN.CAP");
    h.port = (uint16_t)dd_arg_u32(args, "port", 80, 1, 65535);
    h.size = dd_arg_size(args, "size", 10ull << 20);
    h.seed = dd_arg_u64(args, "seed", 1);
    if (!lwip_nic_open(&h.nic, cap, OPEN_TIMEOUT_NS))
        sys_exit(1);
    struct tcp_pcb *l = tcp_new();
    if (!l || tcp_bind(l, IP4_ADDR_ANY, h.port) != ERR_OK)
        dd_panic("httpd: cannot bind port %u", h.port);
    l = tcp_listen(l);
    if (!l)
        dd_panic("httpd: cannot listen on port %u", h.port);
    tcp_accept(l, on_accept);
    if (!dd_poll_add(httpd_poll, NULL))
        dd_panic("httpd: no free poller");
    dd_ready();
    dd_run();
}
