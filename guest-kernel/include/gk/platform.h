/*
 * gk/platform.h — the one interface between the guest kernel and whatever
 * hosts it (moat VMM today; the bare-mode monitor later). Implemented by
 * platform_hosted.c. Ring 0 only, except platform_heartbeat, platform_yield
 * and the accessors. Ring-3 code reaches the rest through gk/sys.h.
 * Calls are cheap except where noted (one VM exit).
 */
#ifndef GK_PLATFORM_H
#define GK_PLATFORM_H

#include <stdint.h>
#include "moat/boot_info.h"
#include "moat/platform_abi.h"

void platform_init(const struct moat_boot_info *bi);
const struct moat_boot_info *platform_boot_info(void);
/* The shared page; NULL before platform_init. */
struct moat_platform_page *platform_page(void);
/* Announce readiness (one exit). */
void platform_ready(void);
/* Orderly stop with code (one exit); never returns. */
_Noreturn void platform_exit(uint32_t code);
/* Ask the host for one MSI on vector (one exit). */
void platform_request_msi(uint32_t vector);
/* Write value to a request port (CAP_REGISTER, SESSION_RELEASE) and return
 * the result the host left in the platform page (one exit). */
int32_t platform_call(uint16_t port, uint32_t value);
/* Bump the heartbeat in shared memory (no exit). */
void platform_heartbeat(void);
/* Note the TSC at a boot step the first time it is passed (no exit; ring 3). */
void platform_boot_mark(enum moat_boot_mark m);
/* Spinning idle: let the host run other threads on this CPU for a while
 * (one exit, no kernel entry; ring 3). */
void platform_yield(void);
/* The crash record is filled; tell the host (one exit); never returns. */
_Noreturn void platform_crash(void);

#endif /* GK_PLATFORM_H */
