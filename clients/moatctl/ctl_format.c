/* moatctl output: human tables and JSON (contract in ctl_format.h). Over
 * 600 lines: one printer per reply kind, each in two styles. */
#include <inttypes.h>
#include <stdbool.h>
#include <string.h>
#include "moatctl/ctl_format.h"

/* A cell holds at most a crash cause and detail ("cause: detail"), the
 * longest thing a row shows. */
#define CELL_MAX 256u
#define COLS_MAX 11u
_Static_assert(24u + 2u + MOAT_DETAIL_MAX <= CELL_MAX, "crash cell fits");

static int done(FILE *out)
{
    return ferror(out) ? -1 : 0;
}

/* ---- strings --------------------------------------------------------------- */

size_t ctl_sanitize(char *dst, size_t dstlen, const char *src, size_t srcmax)
{
    if (dstlen == 0)
        return 0;
    size_t n = strnlen(src, srcmax);
    if (n > dstlen - 1)
        n = dstlen - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    dst[n] = '\0';
    return n;
}

/* A display copy of a fixed-size field; "-" when it is empty. */
static void cell_str(char *cell, const char *field, size_t size)
{
    if (ctl_sanitize(cell, CELL_MAX, field, size) == 0)
        snprintf(cell, CELL_MAX, "-");
}

/* Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0 if there is none. */
static size_t utf8_seq_len(const unsigned char *p, size_t avail)
{
    size_t n;
    uint32_t cp, min;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        n = 2; cp = p[0] & 0x1fu; min = 0x80;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        n = 3; cp = p[0] & 0x0fu; min = 0x800;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        n = 4; cp = p[0] & 0x07u; min = 0x10000;
    } else {
        return 0;
    }
    if (n > avail)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0u) != 0x80u)
            return 0;
        cp = cp << 6 | (p[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

void ctl_json_string(FILE *out, const char *s, size_t max)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strnlen(s, max);
    fputc('"', out);
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            fputc('\\', out);
            fputc(c, out);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(out, "\\u%04x", (unsigned)c);
            i++;
        } else if (c < 0x80) {
            fputc(c, out);
            i++;
        } else {
            size_t n = utf8_seq_len(p + i, len - i);
            if (n) {
                fwrite(p + i, 1, n, out);
                i += n;
            } else {
                fputs("\\ufffd", out);     /* not UTF-8: the document must still parse */
                i++;
            }
        }
    }
    fputc('"', out);
}

/* "key":"value" for a fixed-size field, with a leading comma unless first. */
static void json_kstr(FILE *out, bool first, const char *key, const char *s, size_t max)
{
    fprintf(out, "%s\"%s\":", first ? "" : ",", key);
    ctl_json_string(out, s, max);
}

static void json_ku64(FILE *out, bool first, const char *key, uint64_t v)
{
    fprintf(out, "%s\"%s\":%" PRIu64, first ? "" : ",", key, v);
}

/* ---- sizes and names ------------------------------------------------------- */

void ctl_format_size(char *dst, size_t dstlen, uint64_t blocks, uint32_t block_size)
{
    static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB",
                                        "ZiB", "YiB" };
    const size_t last = sizeof unit / sizeof unit[0] - 1;
    if (block_size == 0 || blocks <= UINT64_MAX / block_size) {
        uint64_t bytes = blocks * block_size;
        if (bytes < 1024) {
            snprintf(dst, dstlen, "%" PRIu64 " B", bytes);
            return;
        }
    }
    /* Above 1 KiB one decimal is all that is shown, so a double is exact
     * enough, and it cannot overflow (at most 2^64 * 2^32 bytes). */
    double v = (double)blocks * (double)block_size;
    size_t u = 0;
    /* 1023.95 would print as "1024.0": move to the next unit instead. */
    while (v >= 1023.95 && u < last) {
        v /= 1024.0;
        u++;
    }
    snprintf(dst, dstlen, "%.1f %s", v, unit[u]);
}

static void format_block_size(char *dst, size_t dstlen, uint32_t bs)
{
    if (bs >= 1024 && bs % 1024 == 0)
        snprintf(dst, dstlen, "%" PRIu32 " KiB", bs / 1024);
    else
        snprintf(dst, dstlen, "%" PRIu32 " B", bs);
}

static const char *kind_name(uint32_t kind, char *buf, size_t len)
{
    switch (kind) {
    case MOAT_CAP_CONTROL: return "control";
    case MOAT_CAP_BLOCK:   return "block";
    case MOAT_CAP_NIC:     return "nic";
    default:
        snprintf(buf, len, "kind-%" PRIu32, kind);
        return buf;
    }
}

static const char *cap_state_name(uint32_t state, char *buf, size_t len)
{
    switch (state) {
    case MOAT_CAP_UP:   return "up";
    case MOAT_CAP_DOWN: return "down";
    default:
        snprintf(buf, len, "state-%" PRIu32, state);
        return buf;
    }
}

/* The VMM's state_name, or (when it sent none) the name of the numeric
 * state: 0 created .. 4 stopped. */
static void domain_state_str(char *dst, size_t dstlen, const struct moat_domain_status *d)
{
    static const char *const names[] = { "created", "booting", "ready", "crashed", "stopped" };
    if (ctl_sanitize(dst, dstlen, d->state_name, sizeof d->state_name) > 0)
        return;
    if (d->state < sizeof names / sizeof names[0])
        snprintf(dst, dstlen, "%s", names[d->state]);
    else
        snprintf(dst, dstlen, "state-%" PRIu32, d->state);
}

static const struct {
    uint32_t flag;
    const char *human, *json;
} blk_features[] = {
    { MOAT_BLK_F_FLUSH, "flush", "flush" },
    { MOAT_BLK_F_WRITE_ZEROES, "zeroes", "write_zeroes" },
    { MOAT_BLK_F_DISCARD, "discard", "discard" },
    { MOAT_BLK_F_READONLY, "read-only", "read_only" },
};
#define N_BLK_FEATURES (sizeof blk_features / sizeof blk_features[0])

/* ---- tables ---------------------------------------------------------------- */

struct column {
    const char *title;
    bool right;             /* right-align (numbers) */
};

/* Fills row i's cells (ncols of them, each CELL_MAX, NUL-terminated). */
typedef void (*fill_row_fn)(const void *rows, size_t i, char (*cells)[CELL_MAX]);

/* Header line and rows, every column as wide as its widest cell, two spaces
 * apart, no trailing blanks. Rows are formatted twice (measure, then print)
 * so nothing is allocated. */
static void print_table(FILE *out, const struct column *cols, size_t ncols, const void *rows,
                        size_t n, fill_row_fn fill)
{
    char cells[COLS_MAX][CELL_MAX];
    int width[COLS_MAX];
    if (ncols > COLS_MAX)
        ncols = COLS_MAX;
    for (size_t c = 0; c < ncols; c++)
        width[c] = (int)strlen(cols[c].title);
    for (size_t i = 0; i < n; i++) {
        fill(rows, i, cells);
        for (size_t c = 0; c < ncols; c++) {
            int w = (int)strlen(cells[c]);
            if (w > width[c])
                width[c] = w;
        }
    }
    for (size_t i = 0; i <= n; i++) {
        if (i == 0) {
            for (size_t c = 0; c < ncols; c++)
                snprintf(cells[c], CELL_MAX, "%s", cols[c].title);
        } else {
            fill(rows, i - 1, cells);
        }
        for (size_t c = 0; c < ncols; c++) {
            const char *sep = c ? "  " : "";
            if (cols[c].right)
                fprintf(out, "%s%*s", sep, width[c], cells[c]);
            else if (c + 1 == ncols)
                fprintf(out, "%s%s", sep, cells[c]);
            else
                fprintf(out, "%s%-*s", sep, width[c], cells[c]);
        }
        fputc('\n', out);
    }
}

/* ---- caps ------------------------------------------------------------------ */

static void format_mac(char *out, size_t len, const uint8_t mac[6])
{
    snprintf(out, len, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
             mac[5]);
}

static void cap_detail(char *cell, const struct moat_cap_desc *cap)
{
    if (cap->kind == MOAT_CAP_NIC) {
        char mac[24];
        format_mac(mac, sizeof mac, cap->nic.mac);
        snprintf(cell, CELL_MAX, "MAC %s, MTU %u%s", mac, cap->nic.mtu,
                 (cap->nic.flags & MOAT_NIC_F_LINK_STATUS) ? ", link status" : "");
        return;
    }
    if (cap->kind != MOAT_CAP_BLOCK) {
        snprintf(cell, CELL_MAX, "-");
        return;
    }
    char size[32], bs[32];
    ctl_format_size(size, sizeof size, cap->blk.blocks, cap->blk.block_size);
    format_block_size(bs, sizeof bs, cap->blk.block_size);
    int len = snprintf(cell, CELL_MAX, "%s, %s blocks", size, bs);
    const char *sep = ", ";
    for (size_t f = 0; f < N_BLK_FEATURES && len > 0 && (size_t)len < CELL_MAX; f++) {
        if (!(cap->blk.flags & blk_features[f].flag))
            continue;
        len += snprintf(cell + len, CELL_MAX - (size_t)len, "%s%s", sep, blk_features[f].human);
        sep = " ";
    }
}

static void cap_row(const void *rows, size_t i, char (*cells)[CELL_MAX])
{
    const struct moat_cap_desc *cap = (const struct moat_cap_desc *)rows + i;
    char buf[24];
    cell_str(cells[0], cap->name, sizeof cap->name);
    cell_str(cells[1], cap->domain, sizeof cap->domain);
    snprintf(cells[2], CELL_MAX, "%s", kind_name(cap->kind, buf, sizeof buf));
    snprintf(cells[3], CELL_MAX, "%s", cap_state_name(cap->state, buf, sizeof buf));
    snprintf(cells[4], CELL_MAX, "%" PRIu64, cap->generation);
    cap_detail(cells[5], cap);
}

static void cap_json(FILE *out, const struct moat_cap_desc *cap)
{
    char buf[24];
    json_kstr(out, true, "name", cap->name, sizeof cap->name);
    json_kstr(out, false, "domain", cap->domain, sizeof cap->domain);
    const char *kind = kind_name(cap->kind, buf, sizeof buf);
    json_kstr(out, false, "kind", kind, strlen(kind));
    const char *state = cap_state_name(cap->state, buf, sizeof buf);
    json_kstr(out, false, "state", state, strlen(state));
    json_ku64(out, false, "generation", cap->generation);
    if (cap->kind == MOAT_CAP_NIC) {
        char mac[24];
        format_mac(mac, sizeof mac, cap->nic.mac);
        fputs(",\"blk\":null,\"nic\":{", out);
        json_kstr(out, true, "mac", mac, strlen(mac));
        json_ku64(out, false, "mtu", cap->nic.mtu);
        json_ku64(out, false, "max_frame", cap->nic.max_frame);
        json_ku64(out, false, "queues", cap->nic.queues);
        fprintf(out, ",\"link_status\":%s}", (cap->nic.flags & MOAT_NIC_F_LINK_STATUS) ? "true" : "false");
        return;
    }
    if (cap->kind != MOAT_CAP_BLOCK) {
        fputs(",\"blk\":null", out);
        return;
    }
    fputs(",\"blk\":{", out);
    json_ku64(out, true, "block_size", cap->blk.block_size);
    json_ku64(out, false, "blocks", cap->blk.blocks);
    json_ku64(out, false, "max_blocks", cap->blk.max_blocks);
    json_ku64(out, false, "queues", cap->blk.queues);
    fputs(",\"features\":[", out);
    const char *sep = "";
    for (size_t f = 0; f < N_BLK_FEATURES; f++) {
        if (cap->blk.flags & blk_features[f].flag) {
            fprintf(out, "%s\"%s\"", sep, blk_features[f].json);
            sep = ",";
        }
    }
    fputs("]}", out);
}

int ctl_print_caps(FILE *out, enum ctl_style st, const struct moat_cap_desc *caps, size_t n)
{
    if (st == CTL_JSON) {
        fputs("{\"caps\":[", out);
        for (size_t i = 0; i < n; i++) {
            fputs(i ? ",{" : "{", out);
            cap_json(out, &caps[i]);
            fputc('}', out);
        }
        fputs("]}\n", out);
        return done(out);
    }
    if (n == 0) {
        fputs("no caps\n", out);
        return done(out);
    }
    static const struct column cols[] = {
        { "NAME", false }, { "DOMAIN", false }, { "KIND", false }, { "STATE", false },
        { "GEN", true }, { "DETAIL", false },
    };
    print_table(out, cols, sizeof cols / sizeof cols[0], caps, n, cap_row);
    return done(out);
}

/* ---- domains --------------------------------------------------------------- */

static bool has_crash(const struct moat_domain_status *d)
{
    return d->crash_cause[0] != '\0' || d->crash_detail[0] != '\0';
}

static void uptime_str(char *dst, size_t dstlen, uint64_t ns)
{
    /* Integer rounding to tenths: exact, and no overflow near UINT64_MAX. */
    uint64_t tenths = ns / 100000000u + (ns % 100000000u >= 50000000u);
    snprintf(dst, dstlen, "%" PRIu64 ".%" PRIu64 " s", tenths / 10, tenths % 10);
}

static void domain_row(const void *rows, size_t i, char (*cells)[CELL_MAX])
{
    const struct moat_domain_status *d = (const struct moat_domain_status *)rows + i;
    cell_str(cells[0], d->name, sizeof d->name);
    snprintf(cells[1], CELL_MAX, "%" PRIu32, d->id);
    domain_state_str(cells[2], CELL_MAX, d);
    uptime_str(cells[3], CELL_MAX, d->uptime_ns);
    snprintf(cells[4], CELL_MAX, "%" PRIu32, d->incarnation);
    snprintf(cells[5], CELL_MAX, "%" PRIu32, d->sessions);
    snprintf(cells[6], CELL_MAX, "%" PRIu64, d->heartbeat);
    snprintf(cells[7], CELL_MAX, "%" PRIu32 "%s", d->restarts, d->breaker_open ? " (breaker)" : "");
    if (!has_crash(d)) {
        snprintf(cells[8], CELL_MAX, "-");
        return;
    }
    char cause[sizeof d->crash_cause], detail[sizeof d->crash_detail];
    ctl_sanitize(cause, sizeof cause, d->crash_cause, sizeof d->crash_cause);
    ctl_sanitize(detail, sizeof detail, d->crash_detail, sizeof d->crash_detail);
    snprintf(cells[8], CELL_MAX, "%s%s%s", cause, cause[0] && detail[0] ? ": " : "", detail);
}

/* The restart policy and why recent incarnations ended, under the table. */
static void domain_restart_lines(FILE *out, const struct moat_domain_status *d)
{
    char name[sizeof d->name], pol[sizeof d->restart_policy];
    ctl_sanitize(name, sizeof name, d->name, sizeof d->name);
    ctl_sanitize(pol, sizeof pol, d->restart_policy, sizeof d->restart_policy);
    fprintf(out, "%s: restart=%s, %" PRIu32 " of %" PRIu32 " automatic restarts used in %" PRIu32
            " ms, breaker %s", name, pol, d->budget_used, d->budget_max, d->budget_window_ms,
            d->breaker_open ? "OPEN" : "closed");
    if (d->breaker_open) {
        char why[sizeof d->breaker_reason];
        ctl_sanitize(why, sizeof why, d->breaker_reason, sizeof d->breaker_reason);
        fprintf(out, ": %s (moatctl restart %s closes it)", why, name);
    }
    fputc('\n', out);
    for (uint32_t i = 0; i < d->n_ends && i < MOAT_DOMAIN_ENDS; i++) {
        const struct moat_domain_end *e = &d->ends[i];
        char ago[32];
        uptime_str(ago, sizeof ago, e->ago_ns);
        if (!e->crashed) {
            fprintf(out, "  incarnation %" PRIu32 " stopped %s ago (exit code %" PRIu32 ")\n",
                    e->incarnation, ago, e->exit_code);
            continue;
        }
        char cause[sizeof e->cause], detail[sizeof e->detail];
        ctl_sanitize(cause, sizeof cause, e->cause, sizeof e->cause);
        ctl_sanitize(detail, sizeof detail, e->detail, sizeof e->detail);
        fprintf(out, "  incarnation %" PRIu32 " crashed %s ago: %s: %s\n", e->incarnation, ago,
                cause, detail);
    }
}

static void domain_json(FILE *out, const struct moat_domain_status *d)
{
    char state[sizeof d->state_name + 16];
    domain_state_str(state, sizeof state, d);
    json_kstr(out, true, "name", d->name, sizeof d->name);
    json_ku64(out, false, "id", d->id);
    json_kstr(out, false, "state", state, sizeof state);
    json_ku64(out, false, "uptime_ns", d->uptime_ns);
    json_ku64(out, false, "heartbeat", d->heartbeat);
    json_ku64(out, false, "incarnation", d->incarnation);
    json_ku64(out, false, "sessions", d->sessions);
    fputs(",\"restart\":{", out);
    json_kstr(out, true, "policy", d->restart_policy, sizeof d->restart_policy);
    json_ku64(out, false, "restarts", d->restarts);
    json_ku64(out, false, "automatic", d->auto_restarts);
    json_ku64(out, false, "budget_used", d->budget_used);
    json_ku64(out, false, "budget_max", d->budget_max);
    json_ku64(out, false, "budget_window_ms", d->budget_window_ms);
    fprintf(out, ",\"breaker_open\":%s", d->breaker_open ? "true" : "false");
    json_kstr(out, false, "breaker_reason", d->breaker_reason, sizeof d->breaker_reason);
    fputs("},\"ends\":[", out);
    for (uint32_t i = 0; i < d->n_ends && i < MOAT_DOMAIN_ENDS; i++) {
        const struct moat_domain_end *e = &d->ends[i];
        fputs(i ? ",{" : "{", out);
        json_ku64(out, true, "incarnation", e->incarnation);
        json_ku64(out, false, "ago_ns", e->ago_ns);
        json_kstr(out, false, "state", e->crashed ? "crashed" : "stopped", 8);
        json_ku64(out, false, "exit_code", e->exit_code);
        json_kstr(out, false, "cause", e->cause, sizeof e->cause);
        json_kstr(out, false, "detail", e->detail, sizeof e->detail);
        fputc('}', out);
    }
    fputc(']', out);
    if (!has_crash(d)) {
        fputs(",\"crash\":null", out);
        return;
    }
    fputs(",\"crash\":{", out);
    json_kstr(out, true, "cause", d->crash_cause, sizeof d->crash_cause);
    json_kstr(out, false, "detail", d->crash_detail, sizeof d->crash_detail);
    fputc('}', out);
}

int ctl_print_domains(FILE *out, enum ctl_style st, const struct moat_domain_status *d,
                      size_t n)
{
    if (st == CTL_JSON) {
        fputs("{\"domains\":[", out);
        for (size_t i = 0; i < n; i++) {
            fputs(i ? ",{" : "{", out);
            domain_json(out, &d[i]);
            fputc('}', out);
        }
        fputs("]}\n", out);
        return done(out);
    }
    if (n == 0) {
        fputs("no domains\n", out);
        return done(out);
    }
    static const struct column cols[] = {
        { "NAME", false }, { "ID", true }, { "STATE", false }, { "UPTIME", true },
        { "INC", true }, { "SESSIONS", true }, { "HEARTBEAT", true }, { "RESTARTS", false },
        { "CRASH", false },
    };
    _Static_assert(sizeof cols / sizeof cols[0] <= COLS_MAX, "domain columns fit");
    print_table(out, cols, sizeof cols / sizeof cols[0], d, n, domain_row);
    for (size_t i = 0; i < n; i++)
        if (d[i].n_ends || d[i].breaker_open || d[i].restarts)
            domain_restart_lines(out, &d[i]);
    return done(out);
}

/* ---- stats ----------------------------------------------------------------- */

static const struct stat_field {
    const char *key;
    size_t off;
    const char *meaning;
} stat_fields[] = {
#define STAT(f, m) { #f, offsetof(struct moat_domain_stats, f), m }
    STAT(exits_io, "port I/O exits"),
    STAT(exits_mmio, "MMIO exits"),
    STAT(exits_intr, "interrupt exits"),
    STAT(msi_sent, "MSIs delivered to the domain"),
    STAT(platform_refused, "platform port accesses refused"),
    STAT(pci_refused, "PCI config, BAR or MSI-X accesses refused"),
    STAT(dma_refused, "device DMAs refused by the broker"),
    STAT(cfg_refused, "config writes refused (read-only bits, BAR moves)"),
    STAT(cfg_bad_access, "config accesses of a wrong width or offset"),
    STAT(msix_bad_access, "MSI-X table or PBA accesses refused"),
    STAT(msi_bad_message, "MSI-X messages refused (bad address or vector)"),
    STAT(bar_decode_off, "BAR accesses with decoding off (ignored)"),
    STAT(dma_master_off, "device DMAs refused: bus mastering off"),
    STAT(bad_doorbells, "doorbell writes the device ignored"),
    STAT(bad_commands, "malformed commands or descriptors refused"),
    STAT(device_fatal, "fatal device states the driver caused"),
    STAT(dma_bytes, "DMA bytes"),
    STAT(dma_windows, "DMA windows"),
    STAT(sessions_open, "cap sessions open now"),
    STAT(sessions_total, "cap sessions opened in all"),
    STAT(client_reports, "protocol violations reported by clients"),
    STAT(restarts, "restarts"),
    STAT(audit_records, "audit records written"),
    STAT(audit_dropped, "audit records no longer kept (trail full)"),
#undef STAT
};
#define N_STAT_FIELDS (sizeof stat_fields / sizeof stat_fields[0])
_Static_assert(N_STAT_FIELDS * sizeof(uint64_t) + MOAT_NAME_LEN ==
               sizeof(struct moat_domain_stats), "every counter of moat_domain_stats is shown");

static uint64_t stat_value(const struct moat_domain_stats *s, size_t f)
{
    uint64_t v;
    memcpy(&v, (const char *)s + stat_fields[f].off, sizeof v);
    return v;
}

static void stat_row(const void *rows, size_t i, char (*cells)[CELL_MAX])
{
    const struct moat_domain_stats *s = rows;
    snprintf(cells[0], CELL_MAX, "%s", stat_fields[i].key);
    snprintf(cells[1], CELL_MAX, "%" PRIu64, stat_value(s, i));
    snprintf(cells[2], CELL_MAX, "%s", stat_fields[i].meaning);
}

int ctl_print_stats(FILE *out, enum ctl_style st, const struct moat_domain_stats *s)
{
    if (st == CTL_JSON) {
        fputs("{\"stats\":{", out);
        json_kstr(out, true, "domain", s->name, sizeof s->name);
        for (size_t f = 0; f < N_STAT_FIELDS; f++)
            json_ku64(out, false, stat_fields[f].key, stat_value(s, f));
        fputs("}}\n", out);
        return done(out);
    }
    char name[CELL_MAX];
    cell_str(name, s->name, sizeof s->name);
    fprintf(out, "domain: %s\n", name);
    static const struct column cols[] = {
        { "COUNTER", false }, { "VALUE", true }, { "MEANING", false },
    };
    print_table(out, cols, sizeof cols / sizeof cols[0], s, N_STAT_FIELDS, stat_row);
    return done(out);
}

/* ---- audit ----------------------------------------------------------------- */

static void audit_row(const void *rows, size_t i, char (*cells)[CELL_MAX])
{
    const struct moat_audit_rec *r = (const struct moat_audit_rec *)rows + i;
    snprintf(cells[0], CELL_MAX, "%" PRIu64, r->seq);
    cell_str(cells[1], r->source, sizeof r->source);
    cell_str(cells[2], r->domain, sizeof r->domain);
    cell_str(cells[3], r->text, sizeof r->text);
}

static const char *const audit_kind_key[MOAT_AUDIT_KINDS] = {
    [MOAT_AUDIT_DMA] = "dma", [MOAT_AUDIT_PCI] = "pci", [MOAT_AUDIT_PLATFORM] = "platform",
    [MOAT_AUDIT_DEVICE] = "device", [MOAT_AUDIT_FATAL] = "fatal", [MOAT_AUDIT_POLICY] = "policy",
    [MOAT_AUDIT_CLIENT] = "client", [MOAT_AUDIT_CONTROL] = "control",
};

static void audit_sum_row(const void *rows, size_t i, char (*cells)[CELL_MAX])
{
    const struct moat_audit_sum *s = (const struct moat_audit_sum *)rows + i;
    if (s->domain[0])
        cell_str(cells[0], s->domain, sizeof s->domain);
    else
        snprintf(cells[0], CELL_MAX, "(moat)");
    snprintf(cells[1], CELL_MAX, "%" PRIu64, s->written);
    snprintf(cells[2], CELL_MAX, "%" PRIu64, s->dropped);
    for (unsigned k = 0; k < MOAT_AUDIT_KINDS; k++)
        snprintf(cells[3 + k], CELL_MAX, "%" PRIu64, s->by_kind[k]);
}

static void audit_sum_json(FILE *out, const struct moat_audit_sum *sum, size_t nsum)
{
    fputs(",\"summary\":[", out);
    for (size_t i = 0; i < nsum; i++) {
        fputs(i ? ",{" : "{", out);
        json_kstr(out, true, "domain", sum[i].domain, sizeof sum[i].domain);
        json_ku64(out, false, "records", sum[i].written);
        json_ku64(out, false, "dropped", sum[i].dropped);
        for (unsigned k = 0; k < MOAT_AUDIT_KINDS; k++)
            json_ku64(out, false, audit_kind_key[k], sum[i].by_kind[k]);
        fputc('}', out);
    }
    fputc(']', out);
}

int ctl_print_audit(FILE *out, enum ctl_style st, const struct moat_audit_rec *r, size_t n,
                    const struct moat_audit_sum *sum, size_t nsum)
{
    if (st == CTL_JSON) {
        fputs("{\"audit\":[", out);
        for (size_t i = 0; i < n; i++) {
            fputs(i ? ",{" : "{", out);
            json_ku64(out, true, "seq", r[i].seq);
            json_kstr(out, false, "source", r[i].source, sizeof r[i].source);
            json_kstr(out, false, "domain", r[i].domain, sizeof r[i].domain);
            json_kstr(out, false, "text", r[i].text, sizeof r[i].text);
            fputc('}', out);
        }
        fputc(']', out);
        if (nsum)
            audit_sum_json(out, sum, nsum);
        fputs("}\n", out);
        return done(out);
    }
    if (nsum) {
        static const struct column scols[3 + MOAT_AUDIT_KINDS] = {
            { "DOMAIN", false }, { "RECORDS", true }, { "DROPPED", true },
            { "DMA", true }, { "PCI", true }, { "PLATFORM", true }, { "DEVICE", true },
            { "FATAL", true }, { "POLICY", true }, { "CLIENT", true }, { "CONTROL", true },
        };
        _Static_assert(MOAT_AUDIT_KINDS == 8, "a column per audit kind");
        print_table(out, scols, sizeof scols / sizeof scols[0], sum, nsum, audit_sum_row);
        fputc('\n', out);
    }
    if (n == 0) {
        fputs("no audit records\n", out);
        return done(out);
    }
    static const struct column cols[] = {
        { "SEQ", true }, { "SOURCE", false }, { "DOMAIN", false }, { "TEXT", false },
    };
    print_table(out, cols, sizeof cols / sizeof cols[0], r, n, audit_row);
    return done(out);
}

/* ---- results --------------------------------------------------------------- */

int ctl_print_result(FILE *out, enum ctl_style st, const char *action, const char *domain,
                     const char *fault)
{
    if (st == CTL_JSON) {
        fputs("{\"ok\":true", out);
        json_kstr(out, false, "domain", domain, SIZE_MAX);
        json_kstr(out, false, "action", action, SIZE_MAX);
        if (fault)
            json_kstr(out, false, "fault", fault, SIZE_MAX);
        fputs("}\n", out);
        return done(out);
    }
    char a[CELL_MAX], d[CELL_MAX], f[CELL_MAX];
    ctl_sanitize(a, sizeof a, action, SIZE_MAX);
    ctl_sanitize(d, sizeof d, domain, SIZE_MAX);
    if (fault) {
        ctl_sanitize(f, sizeof f, fault, SIZE_MAX);
        fprintf(out, "%s %s %s: ok\n", a, f, d);
    } else {
        fprintf(out, "%s %s: ok\n", a, d);
    }
    return done(out);
}
