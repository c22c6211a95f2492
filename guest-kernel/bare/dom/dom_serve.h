/* dom_serve.h — what the bare domain runtime's cap servers share
 * (dom_serve.c: BlockDevice, dom_nic.c: Nic). */
#ifndef BARE_DOM_SERVE_H
#define BARE_DOM_SERVE_H

#include <stdbool.h>
#include "moat/boot_info.h"
#include "moat/session_abi.h"

/* "<domain>.<cap>" and its NUL. */
#define DOM_CAP_NAME (MOAT_NAME_MAX + MOAT_CAP_NAME_MAX + 1)

/* Name reg (truncated to fit) and register it with the monitor; full gets
 * "<domain>.<name>". False (logged) when the monitor refuses. */
bool dom_cap_register(struct moat_cap_register *reg, const char *name, char full[DOM_CAP_NAME]);

#endif /* BARE_DOM_SERVE_H */
