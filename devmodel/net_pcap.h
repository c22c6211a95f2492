/*
 * net_pcap.h — classic libpcap capture files for the switch (netback.h):
 * magic 0xa1b2c3d4 (microsecond stamps, written in host byte order as
 * libpcap does), version 2.4, snaplen 65535, LINKTYPE_ETHERNET (1); one
 * record per frame, flushed per record so the file can be read while moat
 * runs.
 *
 * Errors: open failures return NULL and a full sentence in err. A failed
 * record write returns false (the caller counts it); the first failure of
 * each file is logged, later ones are only counted.
 *
 * Threads: net_pcap_write may be called from any thread; records are
 * written whole under the file's own lock.
 */
#ifndef MOAT_NET_PCAP_H
#define MOAT_NET_PCAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NET_PCAP_MAGIC     0xa1b2c3d4u
#define NET_PCAP_VERSION_MAJOR 2u
#define NET_PCAP_VERSION_MINOR 4u
#define NET_PCAP_SNAPLEN   65535u
#define NET_PCAP_LINKTYPE_ETHERNET 1u
#define NET_PCAP_HEADER_LEN 24u     /* global header */
#define NET_PCAP_RECORD_LEN 16u     /* per-record header before the bytes */

struct net_pcap;

/* Create (truncate) path and write the global header. label names the
 * capture in log lines (the port name). NULL + err on failure. */
struct net_pcap *net_pcap_open(const char *path, const char *label, char *err, size_t errlen);
/* Append one record (stamped now) holding frame[0..len), len <= snaplen.
 * False when the write or flush failed. */
bool net_pcap_write(struct net_pcap *pc, const void *frame, size_t len);
/* Flush and close; NULL is a no-op. */
void net_pcap_close(struct net_pcap *pc);
/* The file's path, as given to net_pcap_open. */
const char *net_pcap_path(const struct net_pcap *pc);

#endif /* MOAT_NET_PCAP_H */
