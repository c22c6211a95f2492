/*
 * moatctl — the operator CLI of a running moat: lists caps and domains, shows
 * a domain's counters and the audit log, restarts, stops or fails a domain.
 * Everything goes through libmoat's Control cap; ctl_format.c prints.
 *
 * Exit status: 0 done; 1 the operation failed (stderr says why and what to
 * do); 2 usage error, found before moat is contacted.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "moat/libmoat.h"
#include "moatctl/ctl_format.h"

enum { CTL_EXIT_OK = 0, CTL_EXIT_FAILED = 1, CTL_EXIT_USAGE = 2 };

#define AUDIT_DEFAULT 20u
/* Bound on list replies we allocate for, whatever count moat claims. */
#define FETCH_MAX 4096u


struct ctx;

struct command {
    const char *name;
    const char *arg[2];         /* argument names, for usage messages */
    size_t min_args, max_args;
    bool admin;                 /* needs MOAT_RIGHT_ADMIN */
    int (*run)(struct ctx *cx);
};

/* What the command line asked for. */
struct invocation {
    const char *socket;         /* NULL: moat_default_socket() */
    bool json;
    bool help;
    const struct command *cmd;
    const char *arg[2];
    size_t nargs;
    uint32_t audit_n;
    bool audit_n_given;
    uint32_t fault;             /* inject: enum moat_fault */
};

/* One run against moat. */
struct ctx {
    const struct invocation *inv;
    const char *path;           /* the socket, for messages */
    enum ctl_style style;
    struct moat_client *client;
    struct moat_cap *ctl;
};

/* ---- help and usage errors ------------------------------------------------- */

static void print_help(FILE *out)
{
    fputs(
"Usage: moatctl [--socket PATH] [--json] COMMAND [ARGS]\n"
"\n"
"Operate a running moat through its control cap: see its caps and domains,\n"
"read a domain's counters and the audit log, restart, stop or fail a domain.\n"
"\n"
"Commands:\n"
"  list                  the caps moat offers: name, serving domain, kind,\n"
"                        state, generation; block caps with size, block size\n"
"                        and features\n"
"  status [DOMAIN]       every domain, or only DOMAIN: id, state, uptime,\n"
"                        incarnation, open sessions, heartbeat, restarts, and\n"
"                        the crash cause and detail of a crashed domain; then\n"
"                        for a domain that restarted or ended: its restart\n"
"                        policy, the restart budget used, the breaker (open:\n"
"                        the domain stays down, with the reason) and why its\n"
"                        last incarnations ended\n"
"  stats DOMAIN          DOMAIN's counters: exits, MSIs, every kind of refused\n"
"                        access, DMA, doorbell and command, fatal device\n"
"                        states, DMA windows, sessions, client reports,\n"
"                        restarts, audit records written and dropped\n"
"  audit [DOMAIN] [-n N] each domain's audit counts (records, dropped, by\n"
"                        kind), then the last N records of every domain (each\n"
"                        domain gets its share, so one cannot crowd out the\n"
"                        others) or of DOMAIN: refused DMAs, PCI and platform\n"
"                        accesses, invalid doorbells, malformed commands,\n"
"                        fatal device states, policy kills, client reports,\n"
"                        control actions; N from 1 to 128, default 20\n"
"  restart DOMAIN        end DOMAIN and start a fresh incarnation (admin); also\n"
"                        closes an open breaker and clears the restart budget\n"
"  stop DOMAIN           stop DOMAIN for good (admin): it finishes what its\n"
"                        clients queued and puts its device down, or is\n"
"                        stopped by force after 2 s\n"
"  inject DOMAIN FAULT   inject FAULT into DOMAIN (admin); FAULT is one of:\n",
        out);
    for (uint32_t k = 1; k <= MOAT_FAULT_MAX; k++)
        fprintf(out, "                          %-16s %s\n", moat_fault_name(k), moat_fault_what(k));
    fputs(
"  help                  show this help and exit\n"
"\n"
"Options (before or after the command; -- ends options):\n"
"      --socket PATH     moat's control socket; default: $MOAT_SOCKET if set,\n"
"                        else $XDG_RUNTIME_DIR/moat.sock if XDG_RUNTIME_DIR is\n"
"                        set, else /tmp/moat-$UID/moat.sock\n"
"      --json            print one JSON document instead of a table:\n"
"                        {\"caps\":[...]}, {\"domains\":[...]}, {\"stats\":{...}},\n"
"                        {\"audit\":[...],\"summary\":[...]}; restart, stop and inject print\n"
"                        {\"ok\":true,\"domain\":...,\"action\":...}\n"
"  -n N                  (audit) how many records to show\n"
"  -h, --help            show this help and exit\n"
"\n"
"list, status, stats and audit need read rights on the control cap; restart,\n"
"stop and inject also need admin rights: run moatctl as the user that runs\n"
"moat.\n"
"\n"
"Exit status: 0 success; 1 the operation failed (moat unreachable, no such\n"
"domain, right refused, ...: stderr says why and what to do); 2 usage error\n"
"(unknown command or option, missing or bad argument).\n"
"\n"
"Examples:\n"
"  moatctl list\n"
"  moatctl status\n"
"  moatctl --json status nvme0 | jq -r '.domains[0].state'\n"
"  moatctl stats nvme0\n"
"  moatctl audit -n 50\n"
"  moatctl audit nvme0\n"
"  moatctl --socket /tmp/moat.sock restart nvme0\n"
"  moatctl inject nvme0 kill\n",
        out);
}

__attribute__((format(printf, 1, 2)))
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("moatctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see moatctl --help)\n", stderr);
    return CTL_EXIT_USAGE;
}

/* A display copy of an operator-given string (it may hold anything). */
static const char *shown(char *buf, size_t len, const char *s)
{
    ctl_sanitize(buf, len, s, SIZE_MAX);
    return buf;
}

/* ---- failures -------------------------------------------------------------- */

/* Says on stderr why what (e.g. "stats nvme0") failed with err (-MOAT_E*)
 * and what to do about it; sys_errno is errno right after the call. */
static int report(const struct ctx *cx, const char *action, const char *domain, int err,
                  int sys_errno)
{
    int code = err < 0 ? -err : err;
    const char *why = moat_strerror(err);
    if (!why)
        why = "unknown error";
    char what[128], dom[MOAT_NAME_LEN * 2], path[256];
    shown(path, sizeof path, cx->path);
    if (domain)
        snprintf(what, sizeof what, "%s %s", action, shown(dom, sizeof dom, domain));
    else
        snprintf(what, sizeof what, "%s", action);

    /* Any failure to connect (other than moat refusing us) means moat is not
     * where we looked. */
    bool reach = code == MOAT_ECONN ||
                 (!cx->client && code != MOAT_EPROTO && code != MOAT_EPERM &&
                  code != MOAT_ENOMEM);
    if (reach) {
        const char *detail = sys_errno ? strerror(sys_errno) : code != MOAT_ECONN ? why : NULL;
        fprintf(stderr, "moatctl: %s: %s moat at %s%s%s%s: is it running? start it with "
                "`moat --control %s ...` or set MOAT_SOCKET\n",
                what, cx->client ? "lost the connection to" : "cannot reach", path,
                detail ? " (" : "", detail ? detail : "", detail ? ")" : "", path);
        return CTL_EXIT_FAILED;
    }
    switch (code) {
    case MOAT_ENOENT:
        if (domain)
            fprintf(stderr, "moatctl: %s: no domain called '%s'; `moatctl status` lists them\n",
                    what, dom);
        else if (!cx->ctl)
            fprintf(stderr, "moatctl: %s: %s: moat at %s offers no \"control\" cap; "
                    "is it older than moatctl?\n", what, why, path);
        else
            fprintf(stderr, "moatctl: %s: %s\n", what, why);
        break;
    case MOAT_EPERM:
        fprintf(stderr, "moatctl: %s: %s: needs %s: run as the user that runs moat\n",
                what, why, cx->inv->cmd->admin ? "admin rights" : "read rights on the control cap");
        break;
    case MOAT_EDOWN:
        fprintf(stderr, "moatctl: %s: %s; `moatctl status` shows its state\n", what, why);
        break;
    case MOAT_EPROTO:
        fprintf(stderr, "moatctl: %s: %s; are moat and moatctl from the same build?\n",
                what, why);
        break;
    case MOAT_ETIMEDOUT:
    case MOAT_EBUSY:
    case MOAT_ELIMIT:
        fprintf(stderr, "moatctl: %s: %s; try again shortly\n", what, why);
        break;
    case MOAT_ESYS:
        fprintf(stderr, "moatctl: %s: %s%s%s%s\n", what, why, sys_errno ? " (" : "",
                sys_errno ? strerror(sys_errno) : "", sys_errno ? ")" : "");
        break;
    default:
        fprintf(stderr, "moatctl: %s: %s\n", what, why);
        break;
    }
    return CTL_EXIT_FAILED;
}

/* ---- commands -------------------------------------------------------------- */

typedef int (*fetch_fn)(void *src, void *out, size_t max);

static int fetch_caps(void *src, void *out, size_t max)
{
    return moat_list(src, out, max);
}

static int fetch_domains(void *src, void *out, size_t max)
{
    return moat_domains(src, out, max);
}

/* A whole list whose length is known only from a first call: returns the
 * count in *buf (the caller frees it) or -MOAT_E*. *total is how many moat
 * said there are (more than the count only past FETCH_MAX, or when the list
 * keeps growing between calls). */
static int fetch_all(fetch_fn fn, void *src, size_t elem, size_t want, void **buf,
                     size_t *total)
{
    void *b = NULL;
    for (int attempt = 0; attempt < 4; attempt++) {
        void *nb = realloc(b, (want ? want : 1) * elem);
        if (!nb) {
            free(b);
            return -MOAT_ENOMEM;
        }
        b = nb;
        int r = fn(src, b, want);
        if (r < 0) {
            free(b);
            return r;
        }
        *buf = b;
        *total = (size_t)r;
        if ((size_t)r <= want || want == FETCH_MAX)
            return (int)((size_t)r < want ? (size_t)r : want);
        want = (size_t)r < FETCH_MAX ? (size_t)r : FETCH_MAX;
    }
    return (int)want;
}

static void note_partial(size_t shown_n, size_t total, const char *what)
{
    if (total > shown_n)
        fprintf(stderr, "moatctl: showing %zu of %zu %s\n", shown_n, total, what);
}

static int cmd_list(struct ctx *cx)
{
    void *buf = NULL;
    size_t total;
    errno = 0;
    int n = fetch_all(fetch_caps, cx->client, sizeof(struct moat_cap_desc), MOAT_LIST_MAX, &buf,
                      &total);
    if (n < 0)
        return report(cx, "list", NULL, n, errno);
    int r = ctl_print_caps(stdout, cx->style, buf, (size_t)n);
    note_partial((size_t)n, total, "caps");
    free(buf);
    return r < 0 ? CTL_EXIT_FAILED : CTL_EXIT_OK;
}

static int cmd_status(struct ctx *cx)
{
    void *buf = NULL;
    size_t total;
    errno = 0;
    int n = fetch_all(fetch_domains, cx->ctl, sizeof(struct moat_domain_status), 64, &buf,
                      &total);
    if (n < 0)
        return report(cx, "status", NULL, n, errno);
    struct moat_domain_status *d = buf;
    int r;
    if (cx->inv->nargs == 0) {
        r = ctl_print_domains(stdout, cx->style, d, (size_t)n);
        note_partial((size_t)n, total, "domains");
    } else {
        const char *want = cx->inv->arg[0];
        size_t len = strlen(want);
        int found = -1;
        for (int i = 0; i < n && found < 0; i++)
            if (strnlen(d[i].name, sizeof d[i].name) == len && !memcmp(d[i].name, want, len))
                found = i;
        if (found < 0) {
            free(buf);
            return report(cx, "status", want, -MOAT_ENOENT, 0);
        }
        r = ctl_print_domains(stdout, cx->style, &d[found], 1);
    }
    free(buf);
    return r < 0 ? CTL_EXIT_FAILED : CTL_EXIT_OK;
}

static int cmd_stats(struct ctx *cx)
{
    struct moat_domain_stats st;
    memset(&st, 0, sizeof st);
    errno = 0;
    int r = moat_domain_stats(cx->ctl, cx->inv->arg[0], &st);
    if (r < 0)
        return report(cx, "stats", cx->inv->arg[0], r, errno);
    return ctl_print_stats(stdout, cx->style, &st) < 0 ? CTL_EXIT_FAILED : CTL_EXIT_OK;
}

static int cmd_audit(struct ctx *cx)
{
    size_t max = cx->inv->audit_n;
    struct moat_audit_rec *rec = calloc(max, sizeof *rec);
    if (!rec)
        return report(cx, "audit", NULL, -MOAT_ENOMEM, 0);
    errno = 0;
    const char *dom = cx->inv->arg[0];
    int n = moat_audit_of(cx->ctl, dom, rec, max);
    static struct moat_audit_sum sum[MOAT_AUDIT_SUM_MAX];
    int ns = n < 0 ? n : moat_audit_summary(cx->ctl, sum, MOAT_AUDIT_SUM_MAX);
    if (n < 0 || ns < 0) {
        free(rec);
        return report(cx, "audit", dom, n < 0 ? n : ns, errno);
    }
    size_t nsum = (size_t)ns < MOAT_AUDIT_SUM_MAX ? (size_t)ns : MOAT_AUDIT_SUM_MAX;
    if (dom) {          /* only that domain's counts */
        size_t k = 0;
        for (size_t i = 0; i < nsum; i++)
            if (strncmp(sum[i].domain, dom, sizeof sum[i].domain) == 0)
                sum[k++] = sum[i];
        nsum = k;
        if (nsum == 0) {
            free(rec);
            return report(cx, "audit", dom, -MOAT_ENOENT, 0);
        }
    }
    /* n counts every record moat holds; only max were copied. */
    int r = ctl_print_audit(stdout, cx->style, rec, (size_t)n < max ? (size_t)n : max, sum, nsum);
    free(rec);
    return r < 0 ? CTL_EXIT_FAILED : CTL_EXIT_OK;
}

static int cmd_change(struct ctx *cx, const char *action,
                      int (*op)(struct moat_cap *, const char *))
{
    const char *dom = cx->inv->arg[0];
    errno = 0;
    int r = op(cx->ctl, dom);
    if (r < 0)
        return report(cx, action, dom, r, errno);
    return ctl_print_result(stdout, cx->style, action, dom, NULL) < 0 ? CTL_EXIT_FAILED
                                                                       : CTL_EXIT_OK;
}

static int cmd_restart(struct ctx *cx)
{
    return cmd_change(cx, "restart", moat_restart);
}

static int cmd_stop(struct ctx *cx)
{
    return cmd_change(cx, "stop", moat_stop);
}

static int cmd_inject(struct ctx *cx)
{
    const char *dom = cx->inv->arg[0];
    errno = 0;
    int r = moat_inject(cx->ctl, dom, cx->inv->fault);
    if (r == -MOAT_ENOTSUP && cx->style != CTL_JSON) {
        fprintf(stderr, "moatctl: inject %s: %s cannot raise '%s' (a device fault needs a "
                "driver with a fault hook; ramblk has no device); moat's log says why\n",
                dom, dom, moat_fault_name(cx->inv->fault));
        return CTL_EXIT_FAILED;
    }
    if (r < 0)
        return report(cx, "inject", dom, r, errno);
    return ctl_print_result(stdout, cx->style, "inject", dom, moat_fault_name(cx->inv->fault)) < 0
               ? CTL_EXIT_FAILED : CTL_EXIT_OK;
}

static const struct command commands[] = {
    { "list",    { NULL, NULL },         0, 0, false, cmd_list },
    { "status",  { "DOMAIN", NULL },     0, 1, false, cmd_status },
    { "stats",   { "DOMAIN", NULL },     1, 1, false, cmd_stats },
    { "audit",   { "DOMAIN", NULL },     0, 1, false, cmd_audit },
    { "restart", { "DOMAIN", NULL },     1, 1, true,  cmd_restart },
    { "stop",    { "DOMAIN", NULL },     1, 1, true,  cmd_stop },
    { "inject",  { "DOMAIN", "FAULT" },  2, 2, true,  cmd_inject },
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

/* ---- command line ---------------------------------------------------------- */

static bool parse_count(const char *s, uint32_t *out)
{
    char *end;
    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (*end || errno || v < 1 || v > MOAT_AUDIT_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* Fills inv from argv. Returns -1 when the command line is well formed,
 * else the exit status (0 after help, CTL_EXIT_USAGE after a message). */
static int parse_args(int argc, char **argv, struct invocation *inv)
{
    char b1[96], b2[256];
    const char *cmdname = NULL;
    const char *extra = NULL;
    bool opts_done = false;
    memset(inv, 0, sizeof *inv);
    inv->audit_n = AUDIT_DEFAULT;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!opts_done && a[0] == '-' && a[1] != '\0') {
            if (!strcmp(a, "--")) {
                opts_done = true;
            } else if (!strcmp(a, "--json")) {
                inv->json = true;
            } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
                inv->help = true;
            } else if (!strcmp(a, "--socket") || !strncmp(a, "--socket=", 9)) {
                const char *v = a[8] == '=' ? a + 9 : (i + 1 < argc ? argv[++i] : NULL);
                if (!v)
                    return usage_error("option --socket needs a PATH");
                if (!*v)
                    return usage_error("option --socket needs a non-empty PATH");
                inv->socket = v;
            } else if (!strncmp(a, "-n", 2)) {
                const char *v = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
                if (!v)
                    return usage_error("option -n needs a number of records");
                if (!parse_count(v, &inv->audit_n))
                    return usage_error("-n %s: give a number of records from 1 to %u",
                                       shown(b1, sizeof b1, v), MOAT_AUDIT_MAX);
                inv->audit_n_given = true;
            } else {
                return usage_error("unknown option '%s'", shown(b1, sizeof b1, a));
            }
            continue;
        }
        if (!cmdname)
            cmdname = a;
        else if (inv->nargs < 2)
            inv->arg[inv->nargs++] = a;
        else if (!extra)
            extra = a;
    }

    if (inv->help || (cmdname && !strcmp(cmdname, "help"))) {
        print_help(stdout);
        return fflush(stdout) == 0 ? CTL_EXIT_OK : CTL_EXIT_FAILED;
    }
    if (!cmdname)
        return usage_error("no command given");
    for (size_t c = 0; c < N_COMMANDS; c++)
        if (!strcmp(cmdname, commands[c].name))
            inv->cmd = &commands[c];
    const struct command *cmd = inv->cmd;
    if (!cmd)
        return usage_error("unknown command '%s'", shown(b1, sizeof b1, cmdname));

    if (extra || inv->nargs > cmd->max_args)
        return usage_error("unexpected argument '%s' for %s",
                           shown(b1, sizeof b1, extra ? extra : inv->arg[cmd->max_args]),
                           cmd->name);
    if (inv->nargs < cmd->min_args) {
        if (cmd->min_args == 2 && inv->nargs == 0)
            return usage_error("%s needs a %s and a %s", cmd->name, cmd->arg[0], cmd->arg[1]);
        return usage_error("%s needs a %s", cmd->name, cmd->arg[inv->nargs]);
    }
    if (inv->audit_n_given && strcmp(cmd->name, "audit") != 0)
        return usage_error("-n applies only to audit");
    if (cmd->max_args > 0 && inv->nargs > 0) {
        /* arg[0] is a domain for every command that takes arguments. */
        size_t len = strlen(inv->arg[0]);
        if (len == 0)
            return usage_error("%s: the DOMAIN name is empty", cmd->name);
        if (len >= MOAT_NAME_LEN)
            return usage_error("%s: domain name '%s' is too long (at most %u characters)",
                               cmd->name, shown(b1, sizeof b1, inv->arg[0]),
                               MOAT_NAME_LEN - 1);
    }
    if (cmd->run == cmd_inject) {
        inv->fault = moat_fault_parse(inv->arg[1]);
        if (!inv->fault) {
            size_t len = 0;
            b2[0] = '\0';
            for (uint32_t k = 1; k <= MOAT_FAULT_MAX; k++)
                len += (size_t)snprintf(b2 + len, len < sizeof b2 ? sizeof b2 - len : 0,
                                        "%s%s", k > 1 ? ", " : "", moat_fault_name(k));
            return usage_error("unknown fault '%s'; faults: %s",
                               shown(b1, sizeof b1, inv->arg[1]), b2);
        }
    }
    return -1;
}

int main(int argc, char **argv)
{
    struct invocation inv;
    int rc = parse_args(argc, argv, &inv);
    if (rc >= 0)
        return rc;

    struct ctx cx = {
        .inv = &inv,
        .path = inv.socket ? inv.socket : moat_default_socket(),
        .style = inv.json ? CTL_JSON : CTL_HUMAN,
    };
    if (!cx.path)
        cx.path = "(default socket)";

    errno = 0;
    int r = moat_connect(inv.socket, &cx.client);
    if (r < 0) {
        cx.client = NULL;
        return report(&cx, inv.cmd->name, NULL, r, errno);
    }
    uint32_t rights = MOAT_RIGHT_READ | (inv.cmd->admin ? MOAT_RIGHT_ADMIN : 0u);
    errno = 0;
    r = moat_open(cx.client, "control", rights, &cx.ctl);
    if (r < 0) {
        /* Named with its domain, but not blamed on it: ENOENT here means no
         * control cap. */
        char what[128], dom[MOAT_NAME_LEN * 2];
        cx.ctl = NULL;
        snprintf(what, sizeof what, "%s%s%s", inv.cmd->name, inv.nargs ? " " : "",
                 inv.nargs ? shown(dom, sizeof dom, inv.arg[0]) : "");
        rc = report(&cx, what, NULL, r, errno);
    } else {
        rc = inv.cmd->run(&cx);
    }
    /* Closes the control cap as well. */
    moat_disconnect(cx.client);

    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "moatctl: cannot write the output: %s\n", strerror(errno));
        return CTL_EXIT_FAILED;
    }
    return rc;
}
