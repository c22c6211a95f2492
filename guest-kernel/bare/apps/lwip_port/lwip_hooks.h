/* lwip_hooks.h — the hooks lwipopts.h names, implemented in lwip_port.c. */
#ifndef MOAT_LWIP_HOOKS_H
#define MOAT_LWIP_HOOKS_H

#include "lwip/ip_addr.h"

/* RFC 6528: a keyed hash of the connection's addresses and ports (key
 * drawn at the first call), plus a clock ticking every 4 us. */
u32_t moat_lwip_tcp_isn(const ip_addr_t *local_ip, u16_t local_port,
                        const ip_addr_t *remote_ip, u16_t remote_port);

#endif /* MOAT_LWIP_HOOKS_H */
