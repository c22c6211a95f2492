/* moat command line (contract in options.h). */
#include <ctype.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include "options.h"

void options_usage(FILE *out)
{
    fputs(
"Usage: moat [OPTIONS] -d SPEC [-d SPEC]...\n"
"       moat [OPTIONS] -c FILE\n"
"\n"
"Run driver domains, each in its own KVM virtual machine, and supervise them:\n"
"a domain that crashes, hangs or breaks policy is stopped and reported while\n"
"the others keep running.\n"
"\n"
"Domains:\n"
"  -d, --domain SPEC       add a domain; SPEC is space-separated key=value:\n"
"                            name=NAME         unique; letters, digits, - and _\n"
"                            kernel=ELF        domain image (e.g. build/guest/demo.elf)\n"
"                            mem=SIZE          private RAM, 4M..1024M in 2M steps (default 16M)\n"
"                            args=\"...\"        arguments passed to the domain\n"
"                            console=on|off    echo this domain's console\n"
"                            watchdog-ms=N     heartbeat timeout for this domain\n"
"                            boot-timeout-ms=N time allowed to reach ready\n"
"                            dev=KIND[:OPT=V...][,KIND...]  PCI devices to assign,\n"
"                                              at most 7; kinds and their options:\n"
"                              testdev         the test DMA engine (no options)\n"
"                              nvme            NVMe 1.4 controller on a raw image:\n"
"                                image=PATH    the image file (required; create it\n"
"                                              with truncate -s 64M PATH)\n"
"                                lba=512|4096  LBA size (default 512)\n"
"                                queues=N      I/O queue pairs offered, 1..16 (4)\n"
"                                mqes=N        entries per queue, 2..4096 (1024)\n"
"                                mdts=N        max transfer 2^N pages (5: 128 KiB)\n"
"                                ro            read-only namespace\n"
"                                poll_us=N     controller polls N us before sleeping (20)\n"
"                                stall=N       test: swallow the N-th I/O command once\n"
"                              virtio-net      virtio 1.2 network device on moat's switch:\n"
"                                legacy=1      the legacy (0.9, I/O BAR) interface\n"
"                                qsize=N       queue entries, power of two (256)\n"
"                                mac=MAC       52-54-00-12-34-56 (default: from the name)\n"
"                                link=up|down  initial link state (up)\n"
"                                event_idx=0 mrg_rxbuf=0 status=0  withhold features\n"
"                                poll_us=N     worker polls N us before sleeping (50)\n"
"                              gvnic           Google Virtual Ethernet (1ae0:0042):\n"
"                                format=gqi-qpl|dqo-rda  queue format offered (gqi-qpl)\n"
"                                queues=N      TX and RX queues, 1..8 (2)\n"
"                                tx_ring=N rx_ring=N  ring entries (256, 512)\n"
"                                mtu=N         68..1500 (1460, as on GCE)\n"
"                                mac=MAC link=up|down  as for virtio-net\n"
"                            dma=SIZE          DMA window size, 2M..256M in 2M steps\n"
"                            dma-windows=N     number of DMA windows, 1..8 (default 1\n"
"                                              when dma= is given)\n"
"                            cpu=N             run the vCPU on CPU N only and the\n"
"                                              domain's device workers on the other\n"
"                                              CPUs (default: wherever the scheduler\n"
"                                              puts them)\n"
"                            policy=failstop|audit  on a refused DMA or protected\n"
"                                              config write: stop the domain (default)\n"
"                                              or refuse, audit and keep it running\n"
"                            restart=never|on-failure|always  after a crash\n"
"                                              (on-failure), or after a crash or an\n"
"                                              exit (always), start a fresh\n"
"                                              incarnation; default on-failure for a\n"
"                                              driver domain (a dev= or a served cap),\n"
"                                              never for others\n"
"                            restarts=N/Ts     restart budget: at most N automatic\n"
"                                              restarts in T seconds (or N/Tms), the\n"
"                                              first at once, each next one after\n"
"                                              twice the last delay (10 ms .. 1 s);\n"
"                                              past it the breaker opens and the\n"
"                                              domain stays down until 'moatctl\n"
"                                              restart' (default 5/30s)\n"
"  -c, --config FILE       read domains from FILE: one 'domain SPEC' per line;\n"
"                          also 'log-dir DIR', 'watchdog-ms N', 'boot-timeout-ms N';\n"
"                          '#' starts a comment\n"
"\n"
"Running:\n"
"      --console           echo every domain's console to stdout as \"[name] line\"\n"
"      --log-dir DIR       per-domain console logs in DIR/NAME.log (default moat-logs)\n"
"      --watchdog-ms N     default heartbeat timeout in ms (default 1000, min 50)\n"
"      --boot-timeout-ms N default time to reach ready in ms (default 5000)\n"
"      --until-ready       stop every domain and exit once all are ready\n"
"      --timeout SECONDS   stop every domain and exit after SECONDS\n"
"      --stay              keep running (and serving the control socket) after\n"
"                          every domain has ended, until SIGINT/SIGTERM\n"
"\n"
"Capabilities (see moatctl --help and the README):\n"
"      --control PATH      serve clients (libmoat, moatctl, moat-nbd) on the Unix\n"
"                          socket PATH, mode 0600; default $MOAT_SOCKET, else\n"
"                          $XDG_RUNTIME_DIR/moat.sock, else /tmp/moat-UID/moat.sock\n"
"      --no-control        no control socket (no caps are reachable)\n"
"\n"
"Network (one switch joins every NIC of every domain, like QEMU's user network):\n"
"      --net A.B.C.D/N     subnet of the built-in gateway, prefix 8..25 (default\n"
"                          10.0.2.0/24): the gateway at .2 answers ARP, ping and\n"
"                          DHCP, leasing addresses from .15 upward\n"
"      --no-gateway        no built-in gateway (no ARP, DHCP or ping answers)\n"
"      --tap IFNAME        also join the host TAP interface IFNAME; needs\n"
"                          CAP_NET_ADMIN, or a persistent device made once with\n"
"                          ip tuntap add dev IFNAME mode tap user $USER\n"
"      --pcap PORT=FILE    capture what port PORT sends and receives to the pcap\n"
"                          FILE; PORT is DOMAIN.DEVICE (vnet0.virtio-net0),\n"
"                          gateway or tap; repeatable, at most 8\n"
"      --hostfwd tcp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT\n"
"                          forward a host TCP port into the subnet, like QEMU's\n"
"                          hostfwd: tcp:127.0.0.1:8080-:80 makes\n"
"                          curl http://127.0.0.1:8080/ reach port 80 of the first\n"
"                          DHCP lease (.15); an empty HOSTADDR is 127.0.0.1 (say\n"
"                          0.0.0.0 to expose it); connections reach the guest\n"
"                          from .3; repeatable, at most 8\n"
"\n"
"  -q, --quiet             only errors on stderr\n"
"  -h, --help              show this help and exit\n"
"  -V, --version           show the version and exit\n"
"\n"
"Events go to stderr, one line each: \"moat: [NAME] ready in 3.10 ms\".\n"
"moat runs until every domain has stopped or crashed (a restart through\n"
"moatctl keeps it running), or until SIGINT/SIGTERM.\n"
"\n"
"Exit status: 0 every domain stopped cleanly (or was ready, with --until-ready);\n"
"             1 a domain crashed or failed to start; 2 usage or configuration\n"
"             error; 3 KVM is not usable on this machine.\n"
"\n"
"Examples:\n"
"  moat --console -d 'name=demo0 kernel=build/guest/demo.elf'\n"
"  moat --console -d 'name=t kernel=build/guest/testdrv.elf dev=testdev dma=4M'\n"
"  moat --control /tmp/m.sock -d 'name=ram0 kernel=build/guest/ramblk.elf mem=96M'\n"
"  moat -d 'name=nvme0 kernel=build/guest/nvme.elf mem=64M dma=32M dev=nvme:image=disk.img'\n"
"    then: moatctl --socket /tmp/m.sock list\n"
"  moat --net 192.168.7.0/24 --pcap gateway=gw.pcap -d 'name=demo0 kernel=build/guest/demo.elf'\n"
"  moat --hostfwd tcp:127.0.0.1:8080-:80 -d 'name=vnet0 kernel=build/guest/vnet.elf dev=virtio-net'\n"
"    then: moat-httpd --root www vnet0.nic0; curl http://127.0.0.1:8080/\n",
        out);
}

enum { OPT_CONSOLE = 256, OPT_LOG_DIR, OPT_WATCHDOG, OPT_BOOT_TIMEOUT, OPT_UNTIL_READY,
       OPT_TIMEOUT, OPT_CONTROL, OPT_NO_CONTROL, OPT_STAY, OPT_NET, OPT_NO_GATEWAY, OPT_TAP,
       OPT_PCAP, OPT_HOSTFWD };

static bool parse_ms(const char *s, uint32_t min, uint32_t *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (!*s || *end || v < min || v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* An interface name the kernel accepts: 1..15 characters, no '/', ':' or
 * whitespace (dev_valid_name); we keep to letters, digits, '.', '-', '_'. */
static bool tap_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 15 || !strcmp(s, ".") || !strcmp(s, ".."))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr(".-_", s[i]))
            return false;
    return true;
}

bool options_net_given(const struct netback_config *net)
{
    struct netback_config d;
    netback_config_default(&d);
    return net->net != d.net || net->prefix != d.prefix || net->no_gateway || net->tap[0] ||
           net->n_pcap || net->n_fwd;
}

enum options_result options_parse(int argc, char **argv, struct moat_config *cfg,
                                  struct netback_config *net, FILE *out, char *err,
                                  size_t errlen)
{
    static const struct option longopts[] = {
        { "domain", required_argument, NULL, 'd' },
        { "config", required_argument, NULL, 'c' },
        { "console", no_argument, NULL, OPT_CONSOLE },
        { "log-dir", required_argument, NULL, OPT_LOG_DIR },
        { "watchdog-ms", required_argument, NULL, OPT_WATCHDOG },
        { "boot-timeout-ms", required_argument, NULL, OPT_BOOT_TIMEOUT },
        { "until-ready", no_argument, NULL, OPT_UNTIL_READY },
        { "timeout", required_argument, NULL, OPT_TIMEOUT },
        { "control", required_argument, NULL, OPT_CONTROL },
        { "no-control", no_argument, NULL, OPT_NO_CONTROL },
        { "stay", no_argument, NULL, OPT_STAY },
        { "net", required_argument, NULL, OPT_NET },
        { "no-gateway", no_argument, NULL, OPT_NO_GATEWAY },
        { "tap", required_argument, NULL, OPT_TAP },
        { "pcap", required_argument, NULL, OPT_PCAP },
        { "hostfwd", required_argument, NULL, OPT_HOSTFWD },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    config_defaults(cfg);
    netback_config_default(net);
    char why[400];
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":d:c:qhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            if (!config_add_domain(cfg, optarg, err, errlen))
                return OPTIONS_ERROR;
            break;
        case 'c':
            if (!config_load_file(cfg, optarg, err, errlen))
                return OPTIONS_ERROR;
            break;
        case OPT_CONSOLE: cfg->console = true; break;
        case OPT_LOG_DIR: snprintf(cfg->log_dir, sizeof cfg->log_dir, "%s", optarg); break;
        case OPT_WATCHDOG:
            if (!parse_ms(optarg, MOAT_WATCHDOG_MIN_MS, &cfg->watchdog_ms)) {
                snprintf(err, errlen, "--watchdog-ms %s: give milliseconds >= %u", optarg,
                         MOAT_WATCHDOG_MIN_MS);
                return OPTIONS_ERROR;
            }
            break;
        case OPT_BOOT_TIMEOUT:
            if (!parse_ms(optarg, 1, &cfg->boot_timeout_ms)) {
                snprintf(err, errlen, "--boot-timeout-ms %s: give milliseconds > 0", optarg);
                return OPTIONS_ERROR;
            }
            break;
        case OPT_UNTIL_READY: cfg->until_ready = true; break;
        case OPT_TIMEOUT:
            if (!parse_ms(optarg, 1, &cfg->timeout_s)) {
                snprintf(err, errlen, "--timeout %s: give whole seconds > 0", optarg);
                return OPTIONS_ERROR;
            }
            break;
        case OPT_CONTROL:
            if (!*optarg || strlen(optarg) >= 108) {
                snprintf(err, errlen, "--control %s: give a socket path of 1 to 107 bytes", optarg);
                return OPTIONS_ERROR;
            }
            snprintf(cfg->control_path, sizeof cfg->control_path, "%s", optarg);
            break;
        case OPT_NO_CONTROL: cfg->no_control = true; break;
        case OPT_STAY: cfg->stay = true; break;
        case OPT_NET:
            if (!netback_parse_subnet(optarg, net, why, sizeof why)) {
                snprintf(err, errlen, "--net: %s", why);
                return OPTIONS_ERROR;
            }
            break;
        case OPT_NO_GATEWAY: net->no_gateway = true; break;
        case OPT_TAP:
            if (!tap_name_ok(optarg)) {
                snprintf(err, errlen, "--tap '%s': give a network interface name of 1 to 15 "
                         "letters, digits, '.', '-' or '_' (e.g. moat0)", optarg);
                return OPTIONS_ERROR;
            }
            snprintf(net->tap, sizeof net->tap, "%s", optarg);
            break;
        case OPT_PCAP:
            if (!netback_parse_pcap(optarg, net, why, sizeof why)) {
                snprintf(err, errlen, "--pcap: %s", why);
                return OPTIONS_ERROR;
            }
            break;
        case OPT_HOSTFWD:
            if (!netback_parse_hostfwd(optarg, net, why, sizeof why)) {
                snprintf(err, errlen, "--hostfwd: %s", why);
                return OPTIONS_ERROR;
            }
            break;
        case 'q': cfg->quiet = true; break;
        case 'h': options_usage(out); return OPTIONS_EXIT_OK;
        case 'V': fprintf(out, "moat %s\n", MOAT_VERSION); return OPTIONS_EXIT_OK;
        case ':':
            snprintf(err, errlen, "option %s needs a value (see moat --help)", argv[optind - 1]);
            return OPTIONS_ERROR;
        default:
            snprintf(err, errlen, "unknown option %s (see moat --help)", argv[optind - 1]);
            return OPTIONS_ERROR;
        }
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument '%s' (domains are given with -d SPEC)",
                 argv[optind]);
        return OPTIONS_ERROR;
    }
    if (cfg->n_domains == 0) {
        snprintf(err, errlen, "no domain to run: give -d 'name=NAME kernel=ELF' or -c FILE "
                 "(see moat --help)");
        return OPTIONS_ERROR;
    }
    return OPTIONS_RUN;
}
