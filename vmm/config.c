/* Operator configuration (contract in config.h). */
#include <ctype.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"
#include "devices.h"
#include "moat/layout.h"

void config_defaults(struct moat_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->log_dir, sizeof c->log_dir, "moat-logs");
    c->watchdog_ms = MOAT_DEFAULT_WATCHDOG_MS;
    c->boot_timeout_ms = MOAT_DEFAULT_BOOT_TIMEOUT_MS;
}

bool config_parse_size(const char *s, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return false;
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k') shift = 10, end++;
    else if (*end == 'M' || *end == 'm') shift = 20, end++;
    else if (*end == 'G' || *end == 'g') shift = 30, end++;
    if (*end != '\0' || (shift && v > (UINT64_MAX >> shift)))
        return false;
    *out = (uint64_t)v << shift;
    return true;
}

static bool parse_u32(const char *s, uint32_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return false;
    errno = 0;
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}


/* Copy a string already checked to fit (len < dst_len). */
static void copy_checked(char *dst, size_t dst_len, const char *src)
{
    size_t n = strnlen(src, dst_len - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static bool name_ok(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len >= MOAT_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)n[i]) && n[i] != '-' && n[i] != '_')
            return false;
    return true;
}

/* Next key=value word of spec at *p; value unquoted into val. */
static bool next_word(const char **p, char *key, size_t klen, char *val, size_t vlen,
                      char *err, size_t errlen)
{
    const char *s = *p;
    size_t k = 0, v = 0;
    while (*s && *s != '=' && !isspace((unsigned char)*s)) {
        if (k + 1 >= klen) {
            snprintf(err, errlen, "domain option name too long near '%.20s'", *p);
            return false;
        }
        key[k++] = *s++;
    }
    key[k] = '\0';
    if (*s != '=') {
        snprintf(err, errlen, "expected key=value, got '%s'", key);
        return false;
    }
    s++;
    bool quoted = *s == '"';
    if (quoted)
        s++;
    while (*s && (quoted ? *s != '"' : !isspace((unsigned char)*s))) {
        if (v + 1 >= vlen) {
            snprintf(err, errlen, "value of '%s' is too long (at most %zu characters)",
                     key, vlen - 1);
            return false;
        }
        val[v++] = *s++;
    }
    val[v] = '\0';
    if (quoted) {
        if (*s != '"') {
            snprintf(err, errlen, "unterminated quote in the value of '%s'", key);
            return false;
        }
        s++;
    }
    *p = s;
    return true;
}

/* "testdev,nvme:image=x.img" -> kinds (each known) and their options. */
static bool parse_devices(const char *val, struct domain_config *out, char *err, size_t errlen)
{
    const char *p = val;
    for (;;) {
        size_t n = strcspn(p, ",");
        size_t kn = strcspn(p, ":,");
        char kind[MOAT_DEVNAME_MAX];
        if (kn == 0 || kn >= sizeof kind) {
            snprintf(err, errlen, "dev=%s: give device kinds separated by commas (known: %s)",
                     val, device_kinds());
            return false;
        }
        memcpy(kind, p, kn);
        kind[kn] = '\0';
        if (!device_kind_known(kind)) {
            snprintf(err, errlen, "dev=%s: unknown device kind '%s' (known: %s)", val, kind,
                     device_kinds());
            return false;
        }
        if (out->n_devices == DEVICES_PER_DOMAIN_MAX) {
            snprintf(err, errlen, "dev=%s: at most %u devices per domain", val,
                     DEVICES_PER_DOMAIN_MAX);
            return false;
        }
        size_t on = n > kn ? n - kn - 1 : 0;
        if (on >= DEVOPTS_MAX) {
            snprintf(err, errlen, "dev=%s: the options of '%s' are longer than %u bytes", val,
                     kind, DEVOPTS_MAX - 1);
            return false;
        }
        memcpy(out->devices[out->n_devices], kind, kn + 1);
        memcpy(out->device_opts[out->n_devices], p + kn + (on ? 1 : 0), on);
        out->device_opts[out->n_devices][on] = '\0';
        out->n_devices++;
        if (!p[n])
            return true;
        p += n + 1;
    }
}

bool config_parse_domain(const char *spec, struct domain_config *out,
                         char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->ram_size = MOAT_DEFAULT_RAM;
    out->restart_max = RESTART_DEFAULT_MAX;
    out->restart_window_ms = RESTART_DEFAULT_WINDOW_MS;
    const char *p = spec;
    char key[32], val[PATH_MAX];
    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        if (!next_word(&p, key, sizeof key, val, sizeof val, err, errlen))
            return false;
        if (!strcmp(key, "name")) {
            if (!name_ok(val)) {
                snprintf(err, errlen, "domain name '%s' must be 1-%u letters, digits, "
                         "'-' or '_'", val, MOAT_NAME_MAX - 1);
                return false;
            }
            copy_checked(out->name, sizeof out->name, val);
        } else if (!strcmp(key, "kernel")) {
            copy_checked(out->kernel, sizeof out->kernel, val);
        } else if (!strcmp(key, "mem")) {
            uint64_t sz;
            if (!config_parse_size(val, &sz) || sz < MOAT_RAM_MIN || sz > MOAT_RAM_MAX ||
                sz % (2u << 20)) {
                snprintf(err, errlen, "mem=%s: give a multiple of 2 MiB from %lluM to %lluM (e.g. mem=16M)",
                         val, MOAT_RAM_MIN >> 20, MOAT_RAM_MAX >> 20);
                return false;
            }
            out->ram_size = sz;
        } else if (!strcmp(key, "args")) {
            if (strlen(val) >= sizeof out->cmdline) {
                snprintf(err, errlen, "args are longer than %zu characters",
                         sizeof out->cmdline - 1);
                return false;
            }
            copy_checked(out->cmdline, sizeof out->cmdline, val);
        } else if (!strcmp(key, "console")) {
            if (strcmp(val, "on") && strcmp(val, "off")) {
                snprintf(err, errlen, "console=%s: use console=on or console=off", val);
                return false;
            }
            out->console_echo = !strcmp(val, "on");
        } else if (!strcmp(key, "watchdog-ms")) {
            if (!parse_u32(val, &out->watchdog_ms) || out->watchdog_ms < MOAT_WATCHDOG_MIN_MS) {
                snprintf(err, errlen, "watchdog-ms=%s: give milliseconds >= %u",
                         val, MOAT_WATCHDOG_MIN_MS);
                return false;
            }
        } else if (!strcmp(key, "boot-timeout-ms")) {
            if (!parse_u32(val, &out->boot_timeout_ms) || out->boot_timeout_ms == 0) {
                snprintf(err, errlen, "boot-timeout-ms=%s: give milliseconds > 0", val);
                return false;
            }
        } else if (!strcmp(key, "dev")) {
            if (!parse_devices(val, out, err, errlen))
                return false;
        } else if (!strcmp(key, "dma")) {
            uint64_t sz;
            if (!config_parse_size(val, &sz) || sz < MOAT_DMA_WINDOW_MIN ||
                sz > MOAT_DMA_WINDOW_MAX || sz % MOAT_DMA_WINDOW_MIN) {
                snprintf(err, errlen, "dma=%s: give a window size that is a multiple of 2 MiB "
                         "from 2M to %lluM (e.g. dma=4M)", val, MOAT_DMA_WINDOW_MAX >> 20);
                return false;
            }
            out->dma_window_size = sz;
            if (!out->dma_windows)
                out->dma_windows = 1;
        } else if (!strcmp(key, "dma-windows")) {
            if (!parse_u32(val, &out->dma_windows) || out->dma_windows == 0 ||
                out->dma_windows > MOAT_WINDOWS_MAX) {
                snprintf(err, errlen, "dma-windows=%s: give 1 to %u", val, MOAT_WINDOWS_MAX);
                return false;
            }
        } else if (!strcmp(key, "cpu")) {
            if (!parse_u32(val, &out->cpu) || out->cpu >= CPU_SETSIZE) {
                snprintf(err, errlen, "cpu=%s: give a CPU number (0 is the first; see nproc)",
                         val);
                return false;
            }
            out->pin_cpu = true;
        } else if (!strcmp(key, "policy")) {
            if (strcmp(val, "failstop") && strcmp(val, "audit")) {
                snprintf(err, errlen, "policy=%s: use policy=failstop (stop the domain at the "
                         "first refused access) or policy=audit (refuse, audit, keep running)",
                         val);
                return false;
            }
            out->policy_audit = !strcmp(val, "audit");
        } else if (!strcmp(key, "restart")) {
            if (!restart_policy_parse(val, &out->restart)) {
                snprintf(err, errlen, "restart=%s: use restart=never, restart=on-failure "
                         "(after a crash) or restart=always (after a crash or an exit)", val);
                return false;
            }
        } else if (!strcmp(key, "restarts")) {
            if (!restart_budget_parse(val, &out->restart_max, &out->restart_window_ms)) {
                snprintf(err, errlen, "restarts=%s: give at most N automatic restarts per "
                         "window as N/SECONDSs or N/MSms, N from 1 to %u (e.g. restarts=5/30s)",
                         val, RESTART_BUDGET_MAX);
                return false;
            }
        } else {
            snprintf(err, errlen, "unknown domain option '%s' (known: name kernel mem args "
                     "console watchdog-ms boot-timeout-ms dev dma dma-windows cpu policy restart restarts)", key);
            return false;
        }
    }
    if (out->dma_windows && !out->dma_window_size)
        out->dma_window_size = MOAT_DMA_WINDOW_MIN;
    if (!out->name[0]) {
        snprintf(err, errlen, "domain needs name=NAME");
        return false;
    }
    if (!out->kernel[0]) {
        snprintf(err, errlen, "domain '%s' needs kernel=ELF (e.g. kernel=build/guest/demo.elf)",
                 out->name);
        return false;
    }
    return true;
}

bool config_add_domain(struct moat_config *c, const char *spec, char *err, size_t errlen)
{
    if (c->n_domains == MOAT_DOMAINS_MAX) {
        snprintf(err, errlen, "too many domains (at most %d)", MOAT_DOMAINS_MAX);
        return false;
    }
    struct domain_config d;
    if (!config_parse_domain(spec, &d, err, errlen))
        return false;
    for (size_t i = 0; i < c->n_domains; i++) {
        if (!strcmp(c->domains[i].name, d.name)) {
            snprintf(err, errlen, "two domains are named '%s'; names must be unique", d.name);
            return false;
        }
    }
    c->domains[c->n_domains++] = d;
    return true;
}

bool config_load_file(struct moat_config *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read config %s: %s", path, strerror(errno));
        return false;
    }
    char line[4096], sub[512];
    unsigned lineno = 0;
    bool ok = true;
    while (ok && fgets(line, sizeof line, f)) {
        lineno++;
        char *s = line;
        while (isspace((unsigned char)*s))
            s++;
        char *hash = strchr(s, '#');
        if (hash && !memchr(s, '"', (size_t)(hash - s)))
            *hash = '\0';
        size_t n = strlen(s);
        while (n && isspace((unsigned char)s[n - 1]))
            s[--n] = '\0';
        if (!*s)
            continue;
        char *arg = s + strcspn(s, " \t");
        if (*arg)
            *arg++ = '\0';
        while (isspace((unsigned char)*arg))
            arg++;
        if (!strcmp(s, "domain")) {
            ok = config_add_domain(c, arg, sub, sizeof sub);
        } else if (!strcmp(s, "log-dir") && *arg) {
            copy_checked(c->log_dir, sizeof c->log_dir, arg);
        } else if (!strcmp(s, "watchdog-ms")) {
            ok = parse_u32(arg, &c->watchdog_ms) && c->watchdog_ms >= MOAT_WATCHDOG_MIN_MS;
            snprintf(sub, sizeof sub, "watchdog-ms needs milliseconds >= %u", MOAT_WATCHDOG_MIN_MS);
        } else if (!strcmp(s, "boot-timeout-ms")) {
            ok = parse_u32(arg, &c->boot_timeout_ms) && c->boot_timeout_ms > 0;
            snprintf(sub, sizeof sub, "boot-timeout-ms needs milliseconds > 0");
        } else {
            ok = false;
            snprintf(sub, sizeof sub, "unknown directive '%.64s' (known: domain, log-dir, "
                     "watchdog-ms, boot-timeout-ms)", s);
        }
        if (!ok)
            snprintf(err, errlen, "%s:%u: %s", path, lineno, sub);
    }
    fclose(f);
    return ok;
}
