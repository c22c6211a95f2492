/*
 * config.h — what an operator asks for: domains and run-wide settings, from
 * the command line (--domain SPEC) or a config file (one "domain SPEC" per
 * line, '#' comments, plus "log-dir", "watchdog-ms", "boot-timeout-ms").
 *
 * A domain SPEC is space-separated key=value words; values may be double-
 * quoted to hold spaces:
 *   name=NAME kernel=ELF [mem=SIZE] [args="..."] [console=on|off]
 *   [watchdog-ms=N] [boot-timeout-ms=N]
 *   [dev=KIND[:OPT=V...][,KIND...]] [dma=SIZE] [dma-windows=N]
 *   [policy=failstop|audit] [restart=never|on-failure|always]
 *   [restarts=N/SECONDSs|N/MSms]
 * A device's options follow its kind after ':' (dev=nvme:image=disk.img:lba=4096);
 * the kind's model validates them when the domain is created.
 * Pure parsing: errors are returned in err as a sentence naming the key and
 * the accepted values; nothing here touches the file system except
 * config_load_file.
 */
#ifndef MOAT_CONFIG_H
#define MOAT_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "devopts.h"
#include "moat/boot_info.h"
#include "moat/restart_policy.h"

#define MOAT_DOMAINS_MAX     32
#define MOAT_DEFAULT_RAM     (16ull << 20)
#define MOAT_DEFAULT_WATCHDOG_MS     1000u
#define MOAT_DEFAULT_BOOT_TIMEOUT_MS 5000u
#define MOAT_WATCHDOG_MIN_MS 50u

struct domain_config {
    char name[MOAT_NAME_MAX];
    char kernel[PATH_MAX];
    uint64_t ram_size;
    char cmdline[MOAT_CMDLINE_MAX];
    bool console_echo;
    uint32_t watchdog_ms;       /* 0 = run-wide default */
    uint32_t boot_timeout_ms;   /* 0 = run-wide default */
    char devices[MOAT_DEVICES_MAX][MOAT_DEVNAME_MAX];   /* device kinds */
    char device_opts[MOAT_DEVICES_MAX][DEVOPTS_MAX];    /* "key=v:key=v" per device */
    uint32_t n_devices;
    uint64_t dma_window_size;   /* bytes per DMA window, 0 = none */
    uint32_t dma_windows;
    bool policy_audit;          /* refusals audited, domain kept running */
    bool pin_cpu;               /* cpu= given: the vCPU runs on cpu only, */
    uint32_t cpu;               /* its device workers on the other CPUs */
    enum restart_policy restart;    /* RESTART_DEFAULT: on-failure for a
                                     * driver domain (one with a device or
                                     * a served cap), never otherwise */
    uint32_t restart_max;       /* automatic restarts per window */
    uint32_t restart_window_ms;
};

#define MOAT_DMA_WINDOW_MIN (2ull << 20)
#define MOAT_DMA_WINDOW_MAX MOAT_WINDOW_SIZE_MAX

struct moat_config {
    struct domain_config domains[MOAT_DOMAINS_MAX];
    size_t n_domains;
    char log_dir[PATH_MAX];
    bool console;               /* echo every domain's console */
    bool until_ready;
    bool quiet;
    uint32_t timeout_s;         /* 0 = none */
    char control_path[PATH_MAX];    /* "" = moat_default_socket() */
    bool no_control;
    bool stay;                  /* keep serving after every domain ended */
    uint32_t watchdog_ms;
    uint32_t boot_timeout_ms;
};

void config_defaults(struct moat_config *c);
/* "16M", "1G", "4096K", "33554432" -> bytes. False on junk or overflow. */
bool config_parse_size(const char *s, uint64_t *out);
bool config_parse_domain(const char *spec, struct domain_config *out,
                         char *err, size_t errlen);
/* Append a parsed domain; refuses duplicates and more than MOAT_DOMAINS_MAX. */
bool config_add_domain(struct moat_config *c, const char *spec, char *err, size_t errlen);
bool config_load_file(struct moat_config *c, const char *path, char *err, size_t errlen);

#endif /* MOAT_CONFIG_H */
