/*
 * control.h — the control socket: moat's front door for clients (libmoat,
 * moatctl, moat-nbd). One thread serves a Unix SOCK_SEQPACKET socket with
 * the protocol of moat/control_abi.h and hands the work to capsvc and the
 * supervisor.
 *
 * Access is by filesystem permissions: the socket is created mode 0600 in
 * a directory moat creates mode 0700 if missing. Each connection's peer
 * credentials (SO_PEERCRED) are logged; a peer running as moat's user (or
 * root) may hold ADMIN rights on the Control cap, others may not.
 * A connection that sends a malformed message gets MOAT_EINVAL; one that
 * sends file descriptors has them closed; one that stops reading its
 * replies is disconnected. When a connection ends, its sessions close and
 * its handles are dropped.
 */
#ifndef MOAT_CONTROL_H
#define MOAT_CONTROL_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct supervisor;

#define CONTROL_CLIENTS_MAX 64u

/* A message that did not fit the client's socket: sent, in order, when
 * the socket has room. fds are moat's own duplicates, closed once sent. */
struct control_out {
    struct control_out *next;
    uint32_t len;
    unsigned n_fds;
    int fds[3];
    uint8_t bytes[];
};

/* Replies and events are never dropped: what the socket cannot take now is
 * queued (at most CONTROL_OUTQ_MAX messages); a client that lets the queue
 * fill is disconnected with a reason, and its sessions are closed. */
#define CONTROL_OUTQ_MAX 1024u

struct control_client {
    int fd;
    uint32_t id;
    uint32_t pid, uid, gid;
    bool admin;
    uint64_t requests, refused;
    struct control_out *out_head, *out_tail;
    uint32_t out_n;
    uint64_t out_queued;        /* messages that had to wait, ever */
    const char *doomed;         /* why it is to be disconnected, or NULL */
};

struct control {
    struct supervisor *sup;
    char path[PATH_MAX];
    int listen_fd;
    int stop_fd;                /* eventfd: control_stop */
    pthread_t thread;
    bool running;
    uint32_t next_client;
    struct control_client cl[CONTROL_CLIENTS_MAX];
};

/* Create the socket at path (a stale socket left by a dead moat is
 * replaced; a live one is not) and start serving. */
bool control_start(struct control *c, struct supervisor *sup, const char *path,
                   char *err, size_t errlen);
/* Stop serving, close every connection, remove the socket. */
void control_stop(struct control *c);
/* The payload size a request of type must have; SIZE_MAX for a type no
 * client may send. */
size_t control_request_len(uint16_t type);

#endif /* MOAT_CONTROL_H */
