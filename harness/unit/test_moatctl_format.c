/* moatctl output (ctl_format): JSON that always parses, whatever the VMM
 * sends, hostile strings escaped and bounded, values where they belong, and
 * human tables with their columns aligned. JSON is checked with jq. */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "moatctl/ctl_format.h"

/* ---- helpers --------------------------------------------------------------- */

static bool have_jq(void)
{
    static int have = -1;
    if (have < 0)
        have = system("command -v jq >/dev/null 2>&1") == 0;
    return have;
}

#define NEED_JQ()                                                               \
    do {                                                                        \
        if (!have_jq()) {                                                       \
            fprintf(stderr, "SKIPPED: jq not installed\n");                     \
            cr_skip_test("SKIPPED: jq not installed");                          \
        }                                                                       \
    } while (0)

struct mem {
    char *buf;
    size_t len;
    FILE *f;
};

static FILE *mem_open(struct mem *m)
{
    m->buf = NULL;
    m->len = 0;
    m->f = open_memstream(&m->buf, &m->len);
    cr_assert_not_null(m->f, "open_memstream failed");
    return m->f;
}

/* Closes the stream; the text stays in m->buf (free it). */
static char *mem_close(struct mem *m)
{
    cr_assert_eq(fclose(m->f), 0, "memstream close failed");
    return m->buf;
}

/* Runs `jq OPTS 'FILTER'` on json (filter free of single quotes); its
 * output (without the final newline) goes to out. Returns jq's exit status. */
static int jq(const char *json, const char *opts, const char *filter, char *out, size_t outlen)
{
    char path[] = "/tmp/moatctl_fmt_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0, "mkstemp failed");
    size_t len = strlen(json);
    cr_assert_eq(write(fd, json, len), (ssize_t)len, "writing the JSON to %s failed", path);
    close(fd);
    char cmd[512];
    cr_assert_null(strchr(filter, '\''), "jq filters here must not hold single quotes");
    int n = snprintf(cmd, sizeof cmd, "jq %s '%s' '%s' 2>&1", opts, filter, path);
    cr_assert(n > 0 && (size_t)n < sizeof cmd, "jq command too long");
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "popen(%s) failed", cmd);
    size_t got = fread(out, 1, outlen - 1, p);
    out[got] = '\0';
    if (got > 0 && out[got - 1] == '\n')
        out[got - 1] = '\0';
    int st = pclose(p);
    unlink(path);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* jq -r FILTER on json must succeed; returns its output. */
static const char *jq_r(const char *json, const char *filter)
{
    static char out[4096];
    int st = jq(json, "-e -r", filter, out, sizeof out);
    cr_assert_eq(st, 0, "jq -e -r '%s' failed (%d) on %s: %s", filter, st, json, out);
    return out;
}

/* True if s is well-formed UTF-8 (jq 1.6 would silently repair it). */
static bool utf8_ok(const unsigned char *s)
{
    while (*s) {
        size_t n = *s < 0x80 ? 1 : (*s & 0xe0) == 0xc0 ? 2 : (*s & 0xf0) == 0xe0 ? 3
                 : (*s & 0xf8) == 0xf0 ? 4 : 0;
        if (n == 0 || (n == 2 && *s < 0xc2))
            return false;
        for (size_t i = 1; i < n; i++)
            if ((s[i] & 0xc0) != 0x80)
                return false;
        s += n;
    }
    return true;
}

/* One JSON document that parses, is valid UTF-8 and has no raw control
 * byte but its final newline. */
static void assert_json(const char *json)
{
    char out[256];
    size_t len = strlen(json);
    cr_assert_gt(len, 0, "no JSON written");
    cr_assert_eq(json[len - 1], '\n', "JSON document should end with a newline: %s", json);
    for (size_t i = 0; i + 1 < len; i++)
        cr_assert_geq((unsigned char)json[i], 0x20,
                      "raw control byte 0x%02x at %zu in JSON output: %s",
                      (unsigned char)json[i], i, json);
    cr_assert(utf8_ok((const unsigned char *)json), "JSON output is not valid UTF-8: %s", json);
    int st = jq(json, "-e", ".", out, sizeof out);
    cr_assert_eq(st, 0, "jq -e . refused the output (%d): %s\n--- output was:\n%s", st, out, json);
    st = jq(json, "-s", "length", out, sizeof out);
    cr_assert_eq(st, 0, "jq -s failed: %s", out);
    cr_assert_str_eq(out, "1", "expected exactly one JSON document, jq saw %s in: %s", out, json);
}

/* Human output holds only printable ASCII and newlines. */
static void assert_printable(const char *text)
{
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        cr_assert(*p == '\n' || (*p >= 0x20 && *p < 0x7f),
                  "non-printable byte 0x%02x in human output:\n%s", *p, text);
}

/* Line i (0-based) of text, copied into buf. */
static const char *line(const char *text, int i, char *buf, size_t len)
{
    const char *p = text;
    for (; i > 0 && p; i--) {
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    cr_assert(p && *p, "output has too few lines:\n%s", text);
    size_t n = strcspn(p, "\n");
    cr_assert_lt(n, len, "line too long");
    memcpy(buf, p, n);
    buf[n] = '\0';
    return buf;
}

static size_t count_lines(const char *text)
{
    size_t n = 0;
    for (; *text; text++)
        n += *text == '\n';
    return n;
}

/* Column of word in the header line must be where value starts in row. */
static void assert_column(const char *header, const char *word, const char *row, const char *value)
{
    const char *h = strstr(header, word);
    cr_assert_not_null(h, "header '%s' has no column %s", header, word);
    size_t col = (size_t)(h - header);
    cr_assert_geq(strlen(row), col + strlen(value), "row '%s' too short for column %s", row, word);
    cr_assert(!strncmp(row + col, value, strlen(value)),
              "column %s (at %zu) should read '%s' in row '%s'\nheader '%s'", word, col, value,
              row, header);
}

static void set(char *field, size_t size, const char *s)
{
    memset(field, 0, size);
    memcpy(field, s, strlen(s) < size ? strlen(s) : size);
}
#define SET(field, s) set((field), sizeof(field), (s))

static struct moat_cap_desc block_cap(const char *name, const char *dom)
{
    struct moat_cap_desc c;
    memset(&c, 0, sizeof c);
    SET(c.name, name);
    SET(c.domain, dom);
    c.kind = MOAT_CAP_BLOCK;
    c.state = MOAT_CAP_UP;
    c.generation = 3;
    c.blk.block_size = 512;
    c.blk.blocks = 131072;          /* 64 MiB */
    c.blk.max_blocks = 256;
    c.blk.queues = 4;
    c.blk.flags = MOAT_BLK_F_FLUSH | MOAT_BLK_F_WRITE_ZEROES | MOAT_BLK_F_DISCARD;
    return c;
}

static struct moat_cap_desc control_cap(void)
{
    struct moat_cap_desc c;
    memset(&c, 0, sizeof c);
    SET(c.name, "control");
    c.kind = MOAT_CAP_CONTROL;
    c.state = MOAT_CAP_UP;
    c.generation = 1;
    return c;
}

static struct moat_domain_status domain(const char *name, uint32_t id, const char *state)
{
    struct moat_domain_status d;
    memset(&d, 0, sizeof d);
    SET(d.name, name);
    d.id = id;
    d.state = 2;
    SET(d.state_name, state);
    d.uptime_ns = 12345678901ull;   /* 12.3 s */
    d.heartbeat = 1234;
    d.incarnation = 1;
    d.sessions = 2;
    return d;
}

/* ---- caps ------------------------------------------------------------------ */

Test(moatctl_format, caps_json_fields)
{
    NEED_JQ();
    struct moat_cap_desc caps[2] = { control_cap(), block_cap("ram0.disk", "ram0") };
    struct mem m;
    cr_assert_eq(ctl_print_caps(mem_open(&m), CTL_JSON, caps, 2), 0, "print reported an error");
    char *j = mem_close(&m);
    assert_json(j);
    cr_assert_str_eq(jq_r(j, ".caps|length"), "2", "both caps should be listed");
    cr_assert_str_eq(jq_r(j, ".caps[0].name"), "control", "control cap name");
    cr_assert_str_eq(jq_r(j, ".caps[0].kind"), "control", "control cap kind");
    cr_assert_str_eq(jq_r(j, ".caps[0].blk == null"), "true", "non-block cap has blk null");
    cr_assert_str_eq(jq_r(j, ".caps[1].name"), "ram0.disk", "block cap name");
    cr_assert_str_eq(jq_r(j, ".caps[1].domain"), "ram0", "serving domain");
    cr_assert_str_eq(jq_r(j, ".caps[1].kind"), "block", "block cap kind");
    cr_assert_str_eq(jq_r(j, ".caps[1].state"), "up", "cap state");
    cr_assert_str_eq(jq_r(j, ".caps[1].generation|tostring"), "3", "generation is a number");
    cr_assert_str_eq(jq_r(j, ".caps[1].blk.block_size|tostring"), "512", "block size");
    cr_assert_str_eq(jq_r(j, ".caps[1].blk.blocks|tostring"), "131072", "block count");
    cr_assert_str_eq(jq_r(j, ".caps[1].blk.max_blocks|tostring"), "256", "max blocks");
    cr_assert_str_eq(jq_r(j, ".caps[1].blk.queues|tostring"), "4", "queues");
    cr_assert_str_eq(jq_r(j, ".caps[1].blk.features|join(\",\")"), "flush,write_zeroes,discard",
                     "features listed by name, in flag order");
    free(j);
}

Test(moatctl_format, caps_human_table)
{
    struct moat_cap_desc caps[3] = { control_cap(), block_cap("ram0.disk", "ram0"),
                                     block_cap("nvme0.namespace1", "nvme0") };
    caps[2].blk.block_size = 4096;
    caps[2].blk.blocks = 262144;    /* 1 GiB */
    caps[2].blk.flags = MOAT_BLK_F_READONLY;
    caps[2].state = MOAT_CAP_DOWN;
    struct mem m;
    cr_assert_eq(ctl_print_caps(mem_open(&m), CTL_HUMAN, caps, 3), 0, "print reported an error");
    char *t = mem_close(&m);
    char hdr[256], r0[256], r1[256], r2[256];
    line(t, 0, hdr, sizeof hdr);
    cr_assert_eq(count_lines(t), 4, "a header and one line per cap expected:\n%s", t);
    cr_assert(!strncmp(hdr, "NAME", 4), "header should start with NAME: %s", hdr);
    line(t, 1, r0, sizeof r0);
    line(t, 2, r1, sizeof r1);
    line(t, 3, r2, sizeof r2);
    assert_column(hdr, "DOMAIN", r0, "-");
    assert_column(hdr, "DOMAIN", r1, "ram0");
    assert_column(hdr, "KIND", r0, "control");
    assert_column(hdr, "KIND", r1, "block");
    assert_column(hdr, "STATE", r1, "up");
    assert_column(hdr, "STATE", r2, "down");
    assert_column(hdr, "DETAIL", r1, "64.0 MiB, 512 B blocks, flush zeroes discard");
    assert_column(hdr, "DETAIL", r2, "1.0 GiB, 4 KiB blocks, read-only");
    assert_column(hdr, "DETAIL", r0, "-");
    cr_assert_null(strstr(t, " \n"), "no trailing blanks expected:\n%s", t);
    free(t);
}

Test(moatctl_format, nic_caps_show_mac_and_mtu)
{
    struct moat_cap_desc caps[1] = { block_cap("vnet0.nic0", "vnet0") };
    caps[0].kind = MOAT_CAP_NIC;
    caps[0].nic = (struct moat_nic_info){ .mac = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0x0e },
                                          .mtu = 1500, .max_frame = 1514,
                                          .flags = MOAT_NIC_F_LINK_STATUS, .queues = 4 };
    struct mem m;
    cr_assert_eq(ctl_print_caps(mem_open(&m), CTL_HUMAN, caps, 1), 0, "print reported an error");
    char *t = mem_close(&m);
    char hdr[256], r0[256];
    line(t, 0, hdr, sizeof hdr);
    line(t, 1, r0, sizeof r0);
    assert_column(hdr, "KIND", r0, "nic");
    assert_column(hdr, "DETAIL", r0, "MAC 52:54:00:ab:cd:0e, MTU 1500, link status");
    free(t);
    NEED_JQ();
    cr_assert_eq(ctl_print_caps(mem_open(&m), CTL_JSON, caps, 1), 0, "print reported an error");
    char *j = mem_close(&m);
    assert_json(j);
    cr_assert_str_eq(jq_r(j, ".caps[0].nic.mac"), "52:54:00:ab:cd:0e", "NIC MAC in JSON");
    cr_assert_str_eq(jq_r(j, ".caps[0].nic.mtu|tostring"), "1500", "NIC MTU in JSON");
    cr_assert_str_eq(jq_r(j, ".caps[0].nic.queues|tostring"), "4", "NIC sessions in JSON");
    cr_assert_str_eq(jq_r(j, ".caps[0].nic.link_status|tostring"), "true", "link status flag");
    cr_assert_str_eq(jq_r(j, ".caps[0].blk == null"), "true", "a NIC has no block geometry");
    free(j);
}

Test(moatctl_format, empty_lists_say_so)
{
    struct mem m;
    ctl_print_caps(mem_open(&m), CTL_HUMAN, NULL, 0);
    char *t = mem_close(&m);
    cr_assert_str_eq(t, "no caps\n", "zero caps should print a clear line, got '%s'", t);
    free(t);
    ctl_print_domains(mem_open(&m), CTL_HUMAN, NULL, 0);
    t = mem_close(&m);
    cr_assert_str_eq(t, "no domains\n", "zero domains should print a clear line, got '%s'", t);
    free(t);
    ctl_print_audit(mem_open(&m), CTL_HUMAN, NULL, 0, NULL, 0);
    t = mem_close(&m);
    cr_assert_str_eq(t, "no audit records\n", "zero records should print a clear line, got '%s'",
                     t);
    free(t);
}

Test(moatctl_format, empty_lists_json)
{
    NEED_JQ();
    struct mem m;
    ctl_print_caps(mem_open(&m), CTL_JSON, NULL, 0);
    char *j = mem_close(&m);
    assert_json(j);
    cr_assert_str_eq(jq_r(j, ".caps|length"), "0", "zero caps is an empty array: %s", j);
    free(j);
    ctl_print_domains(mem_open(&m), CTL_JSON, NULL, 0);
    j = mem_close(&m);
    assert_json(j);
    cr_assert_str_eq(jq_r(j, ".domains|length"), "0", "zero domains is an empty array: %s", j);
    free(j);
    ctl_print_audit(mem_open(&m), CTL_JSON, NULL, 0, NULL, 0);
    j = mem_close(&m);
    assert_json(j);
    cr_assert_str_eq(jq_r(j, ".audit|length"), "0", "zero records is an empty array: %s", j);
    free(j);
}

/* ---- domains --------------------------------------------------------------- */

Test(moatctl_format, domains_json_fields)
{
    NEED_JQ();
    struct moat_domain_status d[2] = { domain("ram0", 0, "ready"), domain("boom", 1, "crashed") };
    d[1].state = 3;
    d[1].incarnation = 2;
    SET(d[1].crash_cause, "exception");
    SET(d[1].crash_detail, "#DE vector 0 error 0x0 at RIP 0x103235");
    struct mem m;
    cr_assert_eq(ctl_print_domains(mem_open(&m), CTL_JSON, d, 2), 0, "print reported an error");
    char *j = mem_close(&m);
    assert_json(j);
    cr_assert_str_eq(jq_r(j, ".domains[0].name"), "ram0", "first domain's name");
    cr_assert_str_eq(jq_r(j, ".domains[0].state"), "ready", "state from state_name");
    cr_assert_str_eq(jq_r(j, ".domains[0].uptime_ns|tostring"), "12345678901", "uptime in ns");
    cr_assert_str_eq(jq_r(j, ".domains[0].heartbeat|tostring"), "1234", "heartbeat");
    cr_assert_str_eq(jq_r(j, ".domains[0].sessions|tostring"), "2", "sessions");
    cr_assert_str_eq(jq_r(j, ".domains[0].crash == null"), "true", "healthy: crash is null");
    cr_assert_str_eq(jq_r(j, ".domains[1].id|tostring"), "1", "second domain's id");
    cr_assert_str_eq(jq_r(j, ".domains[1].incarnation|tostring"), "2", "incarnation");
    cr_assert_str_eq(jq_r(j, ".domains[1].crash.cause"), "exception", "crash cause");
    cr_assert_str_eq(jq_r(j, ".domains[1].crash.detail"), "#DE vector 0 error 0x0 at RIP 0x103235",
                     "crash detail");
    free(j);
}

Test(moatctl_format, domains_human_table)
{
    struct moat_domain_status d[3] = { domain("ram0", 0, "ready"),
                                       domain("a-much-longer-name", 1, "crashed"),
                                       domain("fresh", 2, "") };
    SET(d[1].crash_cause, "watchdog");
    SET(d[1].crash_detail, "no heartbeat for 1000 ms");
    d[1].uptime_ns = 50000000;      /* 0.05 s rounds to 0.1 */
    d[2].state = 1;                 /* no state_name sent: the number's name */
    d[2].uptime_ns = 0;
    struct mem m;
    ctl_print_domains(mem_open(&m), CTL_HUMAN, d, 3);
    char *t = mem_close(&m);
    char hdr[512], r0[512], r1[512], r2[512];
    cr_assert_eq(count_lines(t), 4, "a header and one line per domain expected:\n%s", t);
    line(t, 0, hdr, sizeof hdr);
    line(t, 1, r0, sizeof r0);
    line(t, 2, r1, sizeof r1);
    line(t, 3, r2, sizeof r2);
    assert_column(hdr, "NAME", r1, "a-much-longer-name");
    assert_column(hdr, "STATE", r0, "ready");
    assert_column(hdr, "STATE", r1, "crashed");
    assert_column(hdr, "STATE", r2, "booting");
    assert_column(hdr, "CRASH", r1, "watchdog: no heartbeat for 1000 ms");
    assert_column(hdr, "CRASH", r0, "-");
    cr_assert_not_null(strstr(r0, "12.3 s"), "uptime in s with one decimal: %s", r0);
    cr_assert_not_null(strstr(r1, "0.1 s"), "0.05 s rounds to 0.1 s: %s", r1);
    cr_assert_not_null(strstr(r2, "0.0 s"), "zero uptime is 0.0 s: %s", r2);
    cr_assert_not_null(strstr(r0, "1234"), "heartbeat shown: %s", r0);
    const char *cols[] = { "ID", "UPTIME", "INC", "SESSIONS", "HEARTBEAT" };
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++)
        cr_assert_not_null(strstr(hdr, cols[i]), "header lacks %s: %s", cols[i], hdr);
    free(t);
}

static char *render_domains(enum ctl_style st, const struct moat_domain_status *d, size_t n)
{
    struct mem m;
    cr_assert_eq(ctl_print_domains(mem_open(&m), st, d, n), 0, "print reported an error");
    return mem_close(&m);
}

Test(moatctl_format, restart_policy_breaker_and_recent_ends)
{
    NEED_JQ();
    struct moat_domain_status d = domain("nvme0", 3, "breaker open");
    d.state = 3;
    SET(d.restart_policy, "on-failure");
    d.restarts = 5;
    d.auto_restarts = 5;
    d.budget_used = 5;
    d.budget_max = 5;
    d.budget_window_ms = 30000;
    d.breaker_open = 1;
    SET(d.breaker_reason, "crash loop: 5 restarts within 30000 ms were not enough");
    d.n_ends = 2;
    d.ends[0] = (struct moat_domain_end){ .ago_ns = 1500000000ull, .incarnation = 6, .crashed = 1 };
    SET(d.ends[0].cause, "policy violation");
    SET(d.ends[0].detail, "DMA refused");
    d.ends[1] = (struct moat_domain_end){ .ago_ns = 3000000000ull, .incarnation = 5, .exit_code = 7 };
    char *t = render_domains(CTL_HUMAN, &d, 1);
    cr_assert_not_null(strstr(t, "RESTARTS"), "header: %s", t);
    cr_assert_not_null(strstr(t, "5 (breaker)"), "restarts cell: %s", t);
    cr_assert_not_null(strstr(t, "restart=on-failure, 5 of 5 automatic restarts used in 30000 ms, "
                                 "breaker OPEN: crash loop"), "policy line: %s", t);
    cr_assert_not_null(strstr(t, "moatctl restart nvme0 closes it"), "what to do: %s", t);
    cr_assert_not_null(strstr(t, "incarnation 6 crashed 1.5 s ago: policy violation: DMA refused"),
                       "newest end: %s", t);
    cr_assert_not_null(strstr(t, "incarnation 5 stopped 3.0 s ago (exit code 7)"), "older: %s", t);
    free(t);
    char *j = render_domains(CTL_JSON, &d, 1);
    cr_assert_str_eq(jq_r(j, ".domains[0].restart.policy"), "on-failure");
    cr_assert_str_eq(jq_r(j, ".domains[0].restart.breaker_open|tostring"), "true");
    cr_assert_str_eq(jq_r(j, ".domains[0].restart.budget_max|tostring"), "5");
    cr_assert_str_eq(jq_r(j, ".domains[0].ends[0].cause"), "policy violation");
    cr_assert_str_eq(jq_r(j, ".domains[0].ends[1].state"), "stopped");
    cr_assert_str_eq(jq_r(j, ".domains[0].ends|length|tostring"), "2");
    free(j);
}

/* ---- hostile strings ------------------------------------------------------- */

static const char hostile[] = "a\"b\\c\nd\te\x01\x1b[31mf\x7fg/";

Test(moatctl_format, hostile_strings_json_round_trip)
{
    NEED_JQ();
    struct moat_domain_status d = domain(hostile, 0, "ready");
    SET(d.crash_cause, "panic");
    SET(d.crash_detail, "\"},{\"injected\":true,\"x\":\"");
    struct mem m;
    ctl_print_domains(mem_open(&m), CTL_JSON, &d, 1);
    char *j = mem_close(&m);
    assert_json(j);
    cr_assert_not_null(strstr(j, "\\u0001"), "control byte 0x01 should be \\u0001: %s", j);
    cr_assert_not_null(strstr(j, "\\u001b"), "ESC should be \\u001b: %s", j);
    cr_assert_not_null(strstr(j, "\\u000a"), "newline should be escaped: %s", j);
    cr_assert_not_null(strstr(j, "\\\"b\\\\c"), "quote and backslash escaped: %s", j);
    const char *same = ".domains[0].name == \"a\\\"b\\\\c\\nd\\te\\u0001\\u001b[31mf\\u007fg/\"";
    cr_assert_str_eq(jq_r(j, same), "true", "the name should round-trip through JSON exactly: %s",
                     j);
    cr_assert_str_eq(jq_r(j, ".domains|length"), "1", "a hostile detail must not add entries");
    cr_assert_str_eq(jq_r(j, ".domains[0].crash.detail"), "\"},{\"injected\":true,\"x\":\"",
                     "the detail is one string value");
    free(j);
}

Test(moatctl_format, hostile_strings_human_neutralised)
{
    struct moat_domain_status d[2] = { domain(hostile, 0, "ready"), domain("ok", 1, "ready") };
    SET(d[0].crash_cause, "panic\r");
    SET(d[0].crash_detail, "line1\nline2\x1b]0;title\x07");
    struct mem m;
    ctl_print_domains(mem_open(&m), CTL_HUMAN, d, 2);
    char *t = mem_close(&m);
    assert_printable(t);
    cr_assert_eq(count_lines(t), 3, "a newline in a name must not add a line:\n%s", t);
    cr_assert_not_null(strstr(t, "a\"b\\c?d?e??[31mf?g/"), "control bytes become '?':\n%s", t);
    cr_assert_not_null(strstr(t, "panic?: line1?line2?]0;title?"), "crash text neutralised:\n%s",
                       t);
    char hdr[512], r1[512];
    line(t, 0, hdr, sizeof hdr);
    line(t, 2, r1, sizeof r1);
    assert_column(hdr, "STATE", r1, "ready");
    free(t);

    struct moat_audit_rec r;
    memset(&r, 0, sizeof r);
    SET(r.source, "dma\n");
    SET(r.domain, "x\x1b");
    SET(r.text, "refused\tDMA\n");
    ctl_print_audit(mem_open(&m), CTL_HUMAN, &r, 1, NULL, 0);
    t = mem_close(&m);
    assert_printable(t);
    cr_assert_not_null(strstr(t, "refused?DMA?"), "audit text neutralised:\n%s", t);
    free(t);
}

/* Fields with no NUL inside: printed up to their size, never into the next
 * field. The records sit at the very end of a heap block so an overread
 * trips ASan. */
Test(moatctl_format, unterminated_fields_bounded)
{
    struct moat_cap_desc c = block_cap("x", "ramdom");
    memset(c.name, 'N', sizeof c.name);
    memset(c.domain, 'D', sizeof c.domain);
    struct mem m;
    ctl_print_caps(mem_open(&m), CTL_HUMAN, &c, 1);
    char *t = mem_close(&m);
    char want[MOAT_NAME_LEN + 3];
    memset(want, 'N', MOAT_NAME_LEN);
    strcpy(want + MOAT_NAME_LEN, "  ");
    cr_assert_not_null(strstr(t, want), "the name should be exactly 48 N then a gap:\n%s", t);
    cr_assert_null(strstr(t, "NNND"), "the name ran into the domain field:\n%s", t);
    cr_assert_null(strstr(t, "DDDb"), "the domain ran into the next field:\n%s", t);
    free(t);

    struct moat_audit_rec *r = malloc(sizeof *r);
    cr_assert_not_null(r);
    memset(r, 'T', sizeof *r);
    r->seq = 7;
    ctl_print_audit(mem_open(&m), CTL_HUMAN, r, 1, NULL, 0);
    t = mem_close(&m);
    cr_assert_not_null(strstr(t, "TTTT"), "unterminated text still printed:\n%s", t);
    free(t);

    if (have_jq()) {
        ctl_print_audit(mem_open(&m), CTL_JSON, r, 1, NULL, 0);
        char *j = mem_close(&m);
        assert_json(j);
        cr_assert_str_eq(jq_r(j, ".audit[0].text|length"), "160",
                         "an unterminated text is its whole field (160 bytes): %s", j);
        cr_assert_str_eq(jq_r(j, ".audit[0].source|length"), "16", "source bounded to 16: %s", j);
        cr_assert_str_eq(jq_r(j, ".audit[0].domain|length"), "48", "domain bounded to 48: %s", j);
        free(j);
    }
    free(r);

    struct moat_domain_stats *s = malloc(sizeof *s);
    cr_assert_not_null(s);
    memset(s, 0, sizeof *s);
    memset(s->name, 'S', sizeof s->name);
    s->exits_io = 99;
    ctl_print_stats(mem_open(&m), CTL_HUMAN, s);
    t = mem_close(&m);
    char sw[MOAT_NAME_LEN + 1];
    memset(sw, 'S', MOAT_NAME_LEN);
    sw[MOAT_NAME_LEN] = '\0';
    cr_assert_not_null(strstr(t, sw), "stats name printed whole:\n%s", t);
    free(t);
    free(s);
}

Test(moatctl_format, invalid_utf8_stays_valid_json)
{
    NEED_JQ();
    struct moat_audit_rec r;
    memset(&r, 0, sizeof r);
    r.seq = 1;
    SET(r.source, "client");
    SET(r.domain, "caf\xc3\xa9");                                   /* valid: kept */
    SET(r.text, "bad \xff \xc3 \xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 end");
    struct mem m;
    ctl_print_audit(mem_open(&m), CTL_JSON, &r, 1, NULL, 0);
    char *j = mem_close(&m);
    assert_json(j);
    cr_assert_str_eq(jq_r(j, ".audit[0].domain"), "caf\xc3\xa9", "valid UTF-8 passes through");
    cr_assert_str_eq(jq_r(j, ".audit[0].text|test(\"^bad .* end$\")"), "true",
                     "text around bad bytes kept: %s", j);
    cr_assert_not_null(strstr(j, "\\ufffd"), "invalid bytes become \\ufffd: %s", j);
    free(j);

    ctl_print_audit(mem_open(&m), CTL_HUMAN, &r, 1, NULL, 0);
    char *t = mem_close(&m);
    assert_printable(t);
    cr_assert_not_null(strstr(t, "caf??"), "non-ASCII is '?' in tables:\n%s", t);
    free(t);
}

/* ---- stats, audit, results ------------------------------------------------- */

static struct moat_domain_stats sample_stats(void)
{
    struct moat_domain_stats s;
    memset(&s, 0, sizeof s);
    SET(s.name, "ram0");
    s.exits_io = 101;
    s.exits_mmio = 102;
    s.exits_intr = 103;
    s.msi_sent = 104;
    s.platform_refused = 105;
    s.pci_refused = 106;
    s.dma_refused = 107;
    s.dma_bytes = 4194304;
    s.dma_windows = 2;
    s.sessions_open = 1;
    s.sessions_total = 9;
    s.client_reports = 3;
    s.restarts = UINT64_MAX;
    s.cfg_refused = 201;
    s.cfg_bad_access = 202;
    s.msix_bad_access = 203;
    s.msi_bad_message = 204;
    s.bar_decode_off = 205;
    s.dma_master_off = 206;
    s.bad_doorbells = 207;
    s.bad_commands = 208;
    s.device_fatal = 209;
    s.audit_records = 210;
    s.audit_dropped = 211;
    return s;
}

Test(moatctl_format, stats_json)
{
    NEED_JQ();
    struct moat_domain_stats s = sample_stats();
    struct mem m;
    cr_assert_eq(ctl_print_stats(mem_open(&m), CTL_JSON, &s), 0, "print reported an error");
    char *j = mem_close(&m);
    assert_json(j);
    cr_assert_str_eq(jq_r(j, ".stats.domain"), "ram0", "stats name the domain");
    cr_assert_str_eq(jq_r(j, ".stats|keys|length"), "25", "domain and 24 counters: %s", j);
    static const struct { const char *filter, *want; } f[] = {
        { ".stats.exits_io", "101" }, { ".stats.exits_mmio", "102" },
        { ".stats.exits_intr", "103" }, { ".stats.msi_sent", "104" },
        { ".stats.platform_refused", "105" }, { ".stats.pci_refused", "106" },
        { ".stats.dma_refused", "107" }, { ".stats.dma_bytes", "4194304" },
        { ".stats.dma_windows", "2" }, { ".stats.sessions_open", "1" },
        { ".stats.sessions_total", "9" }, { ".stats.client_reports", "3" },
        { ".stats.cfg_refused", "201" }, { ".stats.cfg_bad_access", "202" },
        { ".stats.msix_bad_access", "203" }, { ".stats.msi_bad_message", "204" },
        { ".stats.bar_decode_off", "205" }, { ".stats.dma_master_off", "206" },
        { ".stats.bad_doorbells", "207" }, { ".stats.bad_commands", "208" },
        { ".stats.device_fatal", "209" }, { ".stats.audit_records", "210" },
        { ".stats.audit_dropped", "211" },
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        char q[64];
        snprintf(q, sizeof q, "%s|tostring", f[i].filter);
        cr_assert_str_eq(jq_r(j, q), f[i].want, "%s should be %s: %s", f[i].filter, f[i].want, j);
    }
    /* jq 1.6 holds numbers as doubles: check the exact integer in the text. */
    cr_assert_not_null(strstr(j, "\"restarts\":18446744073709551615"),
                       "a 64-bit counter is printed as an exact integer: %s", j);
    free(j);
}

Test(moatctl_format, stats_human)
{
    struct moat_domain_stats s = sample_stats();
    struct mem m;
    ctl_print_stats(mem_open(&m), CTL_HUMAN, &s);
    char *t = mem_close(&m);
    char l0[256], hdr[256], row[256];
    cr_assert_str_eq(line(t, 0, l0, sizeof l0), "domain: ram0", "first line names the domain");
    line(t, 1, hdr, sizeof hdr);
    cr_assert(!strncmp(hdr, "COUNTER", 7) && strstr(hdr, "VALUE") && strstr(hdr, "MEANING"),
              "header COUNTER VALUE MEANING expected: %s", hdr);
    cr_assert_eq(count_lines(t), 2 + 24, "one line per counter expected:\n%s", t);
    line(t, 2, row, sizeof row);
    cr_assert(!strncmp(row, "exits_io", 8) && strstr(row, " 101 "), "exits_io row: %s", row);
    /* VALUE is right-aligned: every value ends where the header word ends. */
    size_t end = (size_t)(strstr(hdr, "VALUE") - hdr) + strlen("VALUE");
    for (int i = 2; i < 2 + 24; i++) {
        line(t, i, row, sizeof row);
        cr_assert(row[end - 1] >= '0' && row[end - 1] <= '9' && row[end] == ' ',
                  "value of row %d should end under VALUE:\n%s", i, t);
    }
    cr_assert_not_null(strstr(t, "18446744073709551615"), "largest counter printed:\n%s", t);
    free(t);
}

Test(moatctl_format, audit_json_and_human)
{
    struct moat_audit_rec r[2];
    memset(r, 0, sizeof r);
    r[0].seq = 41;
    SET(r[0].source, "dma");
    SET(r[0].domain, "t");
    SET(r[0].text, "testdev0: DMA of 4096 bytes at IOVA 0x135000: outside every window");
    r[1].seq = 42;
    SET(r[1].source, "control");
    SET(r[1].text, "restart ram0 by uid 1000");
    struct mem m;
    ctl_print_audit(mem_open(&m), CTL_HUMAN, r, 2, NULL, 0);
    char *t = mem_close(&m);
    char hdr[512], r0[512], r1[512];
    cr_assert_eq(count_lines(t), 3, "a header and one line per record:\n%s", t);
    line(t, 0, hdr, sizeof hdr);
    line(t, 1, r0, sizeof r0);
    line(t, 2, r1, sizeof r1);
    assert_column(hdr, "SOURCE", r0, "dma");
    assert_column(hdr, "SOURCE", r1, "control");
    assert_column(hdr, "DOMAIN", r0, "t");
    assert_column(hdr, "DOMAIN", r1, "-");
    assert_column(hdr, "TEXT", r0, "testdev0: DMA of 4096 bytes");
    cr_assert_not_null(strstr(r1, "42"), "seq shown: %s", r1);
    free(t);

    NEED_JQ();
    ctl_print_audit(mem_open(&m), CTL_JSON, r, 2, NULL, 0);
    char *j = mem_close(&m);
    assert_json(j);
    cr_assert_str_eq(jq_r(j, ".audit|length"), "2", "both records");
    cr_assert_str_eq(jq_r(j, ".audit[0].seq|tostring"), "41", "seq is a number");
    cr_assert_str_eq(jq_r(j, ".audit[0].source"), "dma", "source");
    cr_assert_str_eq(jq_r(j, ".audit[1].domain"), "", "no domain is an empty string");
    cr_assert_str_eq(jq_r(j, ".audit[1].text"), "restart ram0 by uid 1000", "text");
    free(j);
}

Test(moatctl_format, result_lines)
{
    struct mem m;
    ctl_print_result(mem_open(&m), CTL_HUMAN, "restart", "ram0", NULL);
    char *t = mem_close(&m);
    cr_assert_str_eq(t, "restart ram0: ok\n", "human result line");
    free(t);
    ctl_print_result(mem_open(&m), CTL_HUMAN, "inject", "ram0", "kill");
    t = mem_close(&m);
    cr_assert_str_eq(t, "inject kill ram0: ok\n", "human result line names the fault");
    free(t);

    NEED_JQ();
    ctl_print_result(mem_open(&m), CTL_JSON, "restart", "x", NULL);
    char *j = mem_close(&m);
    cr_assert_str_eq(j, "{\"ok\":true,\"domain\":\"x\",\"action\":\"restart\"}\n",
                     "JSON result as documented");
    assert_json(j);
    free(j);
    ctl_print_result(mem_open(&m), CTL_JSON, "inject", "we\"ird\n", "kill");
    j = mem_close(&m);
    assert_json(j);
    cr_assert_str_eq(jq_r(j, ".ok and .action == \"inject\" and .fault == \"kill\""), "true",
                     "inject result: %s", j);
    cr_assert_str_eq(jq_r(j, ".domain == \"we\\\"ird\\n\""), "true", "domain escaped: %s", j);
    free(j);
}

/* ---- pieces ---------------------------------------------------------------- */

Test(moatctl_format, sizes)
{
    char b[32];
    static const struct { uint64_t blocks; uint32_t bs; const char *want; } c[] = {
        { 1, 512, "512 B" },
        { 0, 512, "0 B" },
        { 2, 512, "1.0 KiB" },
        { 131072, 512, "64.0 MiB" },
        { 3, 512, "1.5 KiB" },
        { 2047, 512, "1023.5 KiB" },
        { 2 * 1024 * 1024 - 1, 512, "1.0 GiB" },   /* 1023.9995 MiB: next unit, not 1024.0 */
        { 262144, 4096, "1.0 GiB" },
        { UINT64_MAX, 65536, "1.0 YiB" },          /* would overflow 64 bits */
        { UINT64_MAX, 4096, "64.0 ZiB" },
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        ctl_format_size(b, sizeof b, c[i].blocks, c[i].bs);
        cr_assert_str_eq(b, c[i].want, "%llu blocks of %u B should be '%s', got '%s'",
                         (unsigned long long)c[i].blocks, c[i].bs, c[i].want, b);
    }
}

Test(moatctl_format, sanitize_bounds)
{
    char d[8];
    cr_assert_eq(ctl_sanitize(d, sizeof d, "abc\x01\xff", 64), 5, "length of the copy");
    cr_assert_str_eq(d, "abc??", "non-printable bytes become '?'");
    cr_assert_eq(ctl_sanitize(d, sizeof d, "0123456789", 64), 7, "truncated to dstlen - 1");
    cr_assert_str_eq(d, "0123456", "truncated copy is terminated");
    char raw[4] = { 'w', 'x', 'y', 'z' };       /* no NUL */
    cr_assert_eq(ctl_sanitize(d, sizeof d, raw, sizeof raw), 4, "bounded by srcmax");
    cr_assert_str_eq(d, "wxyz", "reads only srcmax bytes");
    cr_assert_eq(ctl_sanitize(d, 1, "abc", 3), 0, "room for the NUL only");
    cr_assert_str_eq(d, "", "empty but terminated");
}

Test(moatctl_format, unknown_kinds_and_states_and_big_numbers)
{
    struct moat_cap_desc c = control_cap();
    c.kind = 9;
    c.state = 77;
    c.generation = UINT64_MAX;
    struct moat_domain_status d = domain("x", UINT32_MAX, "");
    d.state = 12345;
    d.uptime_ns = UINT64_MAX;
    struct mem m;
    ctl_print_caps(mem_open(&m), CTL_HUMAN, &c, 1);
    char *t = mem_close(&m);
    cr_assert(strstr(t, "kind-9") && strstr(t, "state-77") && strstr(t, "18446744073709551615"),
              "unknown kind and state shown by number, generation whole:\n%s", t);
    free(t);
    ctl_print_domains(mem_open(&m), CTL_HUMAN, &d, 1);
    t = mem_close(&m);
    cr_assert(strstr(t, "state-12345") && strstr(t, "18446744073.7 s") && strstr(t, "4294967295"),
              "unknown state by number, huge uptime without overflow:\n%s", t);
    free(t);

    NEED_JQ();
    ctl_print_caps(mem_open(&m), CTL_JSON, &c, 1);
    char *j = mem_close(&m);
    assert_json(j);
    cr_assert_str_eq(jq_r(j, ".caps[0].kind"), "kind-9", "unknown kind named by number");
    cr_assert_not_null(strstr(j, "\"generation\":18446744073709551615"),
                       "generation printed as an exact integer: %s", j);
    free(j);
}

Test(moatctl_format, audit_summary_json_and_human)
{
    struct moat_audit_sum s[2];
    memset(s, 0, sizeof s);
    SET(s[0].domain, "nvme0");
    s[0].written = 5000;
    s[0].dropped = 4936;
    s[0].by_kind[MOAT_AUDIT_FATAL] = 4990;
    s[0].by_kind[MOAT_AUDIT_POLICY] = 10;
    s[1].written = 1;                       /* moat's own trail: no domain */
    s[1].by_kind[MOAT_AUDIT_CONTROL] = 1;
    struct moat_audit_rec r;
    memset(&r, 0, sizeof r);
    r.seq = 7;
    SET(r.source, "fatal");
    SET(r.domain, "nvme0");
    SET(r.text, "nvme0: fatal device state: ASQ/ACQ zero or not page aligned");
    struct mem m;
    ctl_print_audit(mem_open(&m), CTL_HUMAN, &r, 1, s, 2);
    char *t = mem_close(&m);
    char hdr[512], r0[512], r1[512];
    line(t, 0, hdr, sizeof hdr);
    line(t, 1, r0, sizeof r0);
    line(t, 2, r1, sizeof r1);
    assert_column(hdr, "DOMAIN", r0, "nvme0");
    assert_column(hdr, "DOMAIN", r1, "(moat)");
    cr_assert(strstr(hdr, "RECORDS") && strstr(hdr, "DROPPED") && strstr(hdr, "FATAL") &&
              strstr(hdr, "POLICY") && strstr(hdr, "CONTROL"), "summary header: %s", hdr);
    cr_assert(strstr(r0, " 5000 ") && strstr(r0, " 4936 ") && strstr(r0, " 4990 "),
              "nvme0's counts: %s", r0);
    cr_assert_eq(count_lines(t), 3 + 1 + 2, "summary (3), a blank line, records (2):\n%s", t);
    free(t);

    NEED_JQ();
    ctl_print_audit(mem_open(&m), CTL_JSON, &r, 1, s, 2);
    char *j = mem_close(&m);
    assert_json(j);
    cr_assert_str_eq(jq_r(j, ".audit|length"), "1", "one record: %s", j);
    cr_assert_str_eq(jq_r(j, ".summary|length"), "2", "two trails: %s", j);
    cr_assert_str_eq(jq_r(j, ".summary[0].dropped|tostring"), "4936", "dropped: %s", j);
    cr_assert_str_eq(jq_r(j, ".summary[0].fatal|tostring"), "4990", "by kind: %s", j);
    cr_assert_str_eq(jq_r(j, ".summary[1].domain"), "", "moat's trail: %s", j);
    free(j);
}
