/*
 * httpd, an app domain of the kernel booted bare under QEMU (TCG; the
 * domains in ring 3, or SVM guests in test_bare_http_svm): lwIP
 * built freestanding from Debian's source, over the Nic cap the
 * virtio-net domain serves, reached by the host's curl through QEMU's
 * user network forwarding a host port (hostfwd). Each test asserts:
 *   - a 10 MiB download is sha256-identical to the stream the server
 *     makes (moat/pattern.h, made here too); a byte range, HEAD, an
 *     unknown path and a range past the end get their answers;
 *   - the virtio-net domain panicking mid-transfer (32 MiB, so that the
 *     server is still sending) is restarted, the app's session gets fresh
 *     rings and the same download goes on to the last byte, identical
 *     (TCP sends again what the restart lost);
 *   - a download cut off by the client resumes with a byte range
 *     (curl -C -) and the file is identical;
 *   - a crash loop of the virtio-net domain opens its breaker: httpd
 *     waits, and serves the blob again after the console's restart;
 *   - hostile and odd clients: a fifth connection while four are busy
 *     gets 503, requests that never end get 408, malformed ones 400 or
 *     405, a client that half-closes still gets the whole answer, and the
 *     server goes on serving.
 * Without QEMU, curl, sha256sum or lwIP's source every test says SKIPPED.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "bare_console.h"
#include "moat/pattern.h"
#include "testutil.h"

#define SELFTEST_MS 120000u
#define BLOB (10u << 20)
#define BIG_BLOB (32u << 20)            /* a transfer the host's buffers cannot swallow whole */
#define SEED 7u

static unsigned port, blob;
static char url[96], got[PATH_MAX], want_sum[80];

static bool have(const char *tool)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", tool);
    return system(cmd) == 0;
}

static void skip(const char *why)
{
    fprintf(stderr, "SKIPPED: bare_http: %s\n", why);
    cr_skip_test("SKIPPED: %s", why);
}

/* The sha256 of a file, by sha256sum. */
static void sha256_of(const char *path, char *out, size_t len)
{
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "cannot run sha256sum");
    cr_assert(fscanf(p, "%64s", out) == 1 && strlen(out) == 64 && len > 64,
              "sha256sum printed no sum for %s", path);
    pclose(p);
}

/* What the server's /blob must be: the stream made here, into a file,
 * and its sha256. */
static void make_expected(void)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/expected.bin", tu_tmpdir());
    uint8_t *b = malloc(blob);
    cr_assert_not_null(b);
    moat_pattern_fill(b, 0, blob, SEED);
    FILE *f = fopen(path, "wb");
    cr_assert(f && fwrite(b, 1, blob, f) == blob && fclose(f) == 0, "cannot write %s", path);
    free(b);
    sha256_of(path, want_sum, sizeof want_sum);
}

/* Boot the virtio-net domain and httpd serving a /blob of size bytes
 * (QEMU forwarding a host port to its port 80) to the line saying it
 * serves. */
static void boot_httpd(unsigned size)
{
    static char words[256], device[96], netdev[96];
    if (!have("curl") || !have("sha256sum"))
        skip("needs curl and sha256sum (scripts/install-deps.sh installs them)");
    char image[PATH_MAX];
    snprintf(image, sizeof image, "%s/bare/httpd.dom.elf", MOAT_BUILD_DIR);
    if (access(image, R_OK) != 0)
        skip("httpd.dom.elf is not built: lwIP's source is not in LWIP_SRC "
             "(scripts/fetch-lwip-source.sh fetches it; make then builds it)");
    blob = size;
    make_expected();
    port = 20000u + (unsigned)getpid() % 20000u;
    snprintf(url, sizeof url, "http://127.0.0.1:%u", port);
    snprintf(netdev, sizeof netdev, "user,id=n0,hostfwd=tcp:127.0.0.1:%u-:80", port);
    snprintf(device, sizeof device, "virtio-net-pci,netdev=n0");
    snprintf(words, sizeof words, "domain=web mem=8M dma=2M cap=vnet0.nic0 size=%u seed=%u",
             blob, SEED);
    snprintf(got, sizeof got, "%s/got.bin", tu_tmpdir());
    boot_kernel_to_prompt("q35", bare_modules_args("vnet.dom.elf",
                                                   "domain=vnet0 dev=virtio-net mem=16M dma=32M",
                                                   "httpd.dom.elf", words,
                                                   (char *[]){ "-netdev", netdev, "-device",
                                                               device, NULL }));
    cr_assert(qc_seen("web: lwIP: address 10.0.2.15 (mask 255.255.255.0, gateway 10.0.2.2) by "
                      "DHCP, through vnet0.nic0", SELFTEST_MS), "no DHCP lease:\n%s", qc.text);
    char serving[128];
    snprintf(serving, sizeof serving, "web: httpd: serving http://10.0.2.15:80/ (/blob: %u bytes, "
             "seed %u)", blob, SEED);
    cr_assert(qc_seen(serving, REPLY_MS), "httpd does not say it serves:\n%s", qc.text);
}

/* curl with args (a shell fragment); its exit code. Output to got. */
static int curl(const char *args)
{
    char cmd[PATH_MAX + 512];
    snprintf(cmd, sizeof cmd, "curl -sS -m 180 %s -o '%s' %s/blob", args, got, url);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* The downloaded file is the whole blob, by sha256. */
static void got_identical(const char *what)
{
    char sum[80];
    sha256_of(got, sum, sizeof sum);
    cr_assert_str_eq(sum, want_sum, "%s: sha256 %s, the blob's is %s", what, sum, want_sum);
}

/* A curl of the blob at rate (bytes/s), started in the background. */
static pid_t curl_background(const char *extra, const char *rate)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        char u[128];
        snprintf(u, sizeof u, "%s/blob", url);
        execlp("curl", "curl", "-sS", "-m", "300", "--limit-rate", rate, extra, "-o", got, u,
               (char *)NULL);
        _exit(127);
    }
    return pid;
}

static off_t size_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : 0;
}

/* Wait until the download into got has passed `past` bytes. */
static void wait_past(off_t past, pid_t pid)
{
    for (int i = 0; i < 6000 && size_of(got) < past; i++) {
        cr_assert_eq(waitpid(pid, NULL, WNOHANG), 0, "curl ended at %lld bytes, before %lld",
                     (long long)size_of(got), (long long)past);
        usleep(10000);          /* watching a file grow: nothing to wait on */
    }
    cr_assert_geq(size_of(got), past, "the download stalled at %lld bytes:\n%s",
                  (long long)size_of(got), qc.text);
}

static void curl_exits_ok(pid_t pid, const char *what)
{
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: curl failed (status %#x):\n%s", what,
              st, qc.text);
}

Test(bare_http, a_10_mib_download_is_identical_and_ranges_head_and_errors_are_answered,
     .timeout = 400)
{
    boot_httpd(BLOB);
    cr_assert_eq(curl(""), 0, "curl of /blob failed:\n%s", qc.text);
    got_identical("10 MiB through hostfwd");
    cr_assert(qc_seen("web: httpd: 10.0.2.2:", REPLY_MS) &&
              qc_seen("GET /blob 200, 10485760 of 10485760 bytes in ", REPLY_MS),
              "no log line for the answer:\n%s", qc.text);

    /* Bytes 1000..4999, from the middle of a word to the middle of another. */
    cr_assert_eq(curl("-r 1001-4998"), 0, "curl of a range failed");
    uint8_t want[3998], have_b[4000];
    moat_pattern_fill(want, 1001, sizeof want, SEED);
    FILE *f = fopen(got, "rb");
    cr_assert_not_null(f);
    size_t n = fread(have_b, 1, sizeof have_b, f);
    fclose(f);
    cr_assert(n == sizeof want && memcmp(want, have_b, n) == 0,
              "range 1001-4998: %zu bytes, not the blob's bytes there", n);
    cr_assert(qc_seen("GET /blob 206, 3998 of 3998 bytes", REPLY_MS), "no 206:\n%s", qc.text);

    char cmd[512], line[512] = "";
    snprintf(cmd, sizeof cmd, "curl -sS -I %s/blob; curl -sS -i %s/nope; curl -sS -i -r "
             "20000000- %s/blob", url, url, url);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char all[4096] = "";
    while (fgets(line, sizeof line, p))
        strncat(all, line, sizeof all - strlen(all) - 1);
    pclose(p);
    cr_assert(strstr(all, "HTTP/1.1 200 OK\r\n") && strstr(all, "Content-Length: 10485760\r\n") &&
              strstr(all, "Accept-Ranges: bytes\r\n"), "HEAD /blob: %s", all);
    cr_assert(strstr(all, "HTTP/1.1 404 Not Found\r\n") && strstr(all, "404 Not Found\n"),
              "an unknown path: %s", all);
    cr_assert(strstr(all, "HTTP/1.1 416 Range Not Satisfiable\r\n") &&
              strstr(all, "Content-Range: bytes */10485760\r\n"), "a range past the end: %s", all);

    char out[8192];
    run_cmd("domains", out, sizeof out);
    cr_assert(strstr(out, "web: running") && strstr(out, "vnet0.nic0"),
              "domains does not show web on vnet0.nic0: %s", out);
    reboot_and_close();
}

Test(bare_http, a_vnet_crash_mid_transfer_is_restarted_and_the_download_completes_identical,
     .timeout = 400)
{
    boot_httpd(BIG_BLOB);
    /* The crash once 2 MiB have come: the server is then at most what
     * the host's socket buffers hold (a few MiB) ahead, far from the end. */
    pid_t pid = curl_background("--no-progress-meter", "1G");
    wait_past(2 << 20, pid);
    panic_and_restart("vnet0", SELFTEST_MS);
    const char *restarted = strstr(qc.text, "incarnation 2");
    cr_assert(qc_expect(&qc, "web: session 0: fresh rings (generation 2)", REPLY_MS),
              "the app's session got no fresh rings:\n%s", qc.text);
    curl_exits_ok(pid, "the download across the restart");
    got_identical("32 MiB across a virtio-net domain crash");
    cr_assert(qc_seen("GET /blob 200, 33554432 of 33554432 bytes in ", REPLY_MS),
              "the server did not finish the answer:\n%s", qc.text);
    const char *answered = strstr(qc.text, "GET /blob 200, 33554432 of 33554432 bytes in ");
    cr_assert(restarted && answered > restarted,
              "the server had sent everything before the crash: not a crash mid-transfer:\n%s",
              qc.text);
    reboot_and_close();
}

/* A crash loop of the virtio-net domain opens its breaker: httpd's
 * session is down, its receive buffers wait (no resubmission from inside
 * the failure, which once recursed until the domain's stack ran out),
 * and after the console's restart the same httpd, with the same lease,
 * serves the blob again. */
Test(bare_http, a_crash_loop_leaves_httpd_waiting_and_a_restart_serves_again, .timeout = 400)
{
    boot_httpd(BLOB);
    crash_loop_to_breaker("vnet0", "web", SELFTEST_MS);
    char out[8192];
    run_cmd("domains", out, sizeof out);
    cr_assert(strstr(out, "web: running, incarnation 1"), "httpd did not wait: %s", out);
    run_cmd("restart vnet0", out, sizeof out);
    cr_assert(qc_expect(&qc, "web: session 0: fresh rings (generation 7)", SELFTEST_MS),
              "httpd's session was not served again:\n%s", qc.text);
    cr_assert_eq(curl(""), 0, "curl after the restart failed:\n%s", qc.text);
    got_identical("10 MiB after a crash loop and a restart");
    cr_assert(!strstr(qc.text, "web: crashed"), "httpd crashed:\n%s", qc.text);
    run_cmd("domains", out, sizeof out);
    cr_assert(strstr(out, "web: running, incarnation 1"), "httpd was restarted: %s", out);
    reboot_and_close();
}

Test(bare_http, a_download_cut_off_resumes_with_a_range_and_is_identical, .timeout = 400)
{
    boot_httpd(BLOB);
    pid_t pid = curl_background("--no-progress-meter", "2M");
    wait_past(3 << 20, pid);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    off_t had = size_of(got);
    cr_assert_lt(had, (off_t)BLOB, "curl finished before it was cut off");
    /* The server has queued more than curl took (the host buffers it):
     * it sees the connection reset, unless it had queued it all. */
    cr_assert(qc_seen("GET /blob 200, ", SELFTEST_MS) &&
              qc_seen("; TCP segments sent again so far", REPLY_MS),
              "no log line for the first answer:\n%s", qc.text);
    cr_assert(strstr(qc.text, ": reset by the client;") ||
              strstr(qc.text, "GET /blob 200, 10485760 of 10485760 bytes"),
              "the server did not see the client go:\n%s", qc.text);
    cr_assert_eq(curl("-C -"), 0, "the resumed curl failed:\n%s", qc.text);
    got_identical("10 MiB cut off and resumed");
    char want[96];
    snprintf(want, sizeof want, "GET /blob 206, %lld of %lld bytes in ", (long long)(BLOB - had),
             (long long)(BLOB - had));
    cr_assert(qc_seen(want, REPLY_MS), "no 206 from byte %lld:\n%s", (long long)had, qc.text);
    reboot_and_close();
}

/* A TCP connection to the forwarded port. */
static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    cr_assert(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0,
              "cannot connect to 127.0.0.1:%u: %s", port, strerror(errno));
    return fd;
}

static void send_str(int fd, const char *s)
{
    cr_assert_eq(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s), "send: %s",
                 strerror(errno));
}

/* Everything the server sends until it closes (or timeout_ms passes). */
static void read_all(int fd, char *out, size_t len, unsigned timeout_ms)
{
    size_t n = 0;
    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, (int)timeout_ms) != 1)
            break;
        ssize_t k = recv(fd, out + n, len - 1 - n, 0);
        if (k <= 0)
            break;
        n += (size_t)k;
        if (n == len - 1)
            break;
    }
    out[n] = '\0';
}

static void answer_is(const char *request, const char *status_line)
{
    int fd = dial();
    send_str(fd, request);
    char reply[1024];
    read_all(fd, reply, sizeof reply, REPLY_MS);
    close(fd);
    cr_assert(!strncmp(reply, status_line, strlen(status_line)), "%s-> not %s but: %s",
              request, status_line, reply);
}

Test(bare_http, hostile_clients_get_their_status_and_the_server_goes_on, .timeout = 400)
{
    boot_httpd(BLOB);
    /* Five connections that start a request and stall: the four the
     * server takes first hold every slot (408 after its 10 s), the fifth,
     * whichever it is, gets 503 at once. */
    int stalled[5], busy = 0, timed_out = 0;
    for (int i = 0; i < 5; i++) {
        stalled[i] = dial();
        send_str(stalled[i], "GET / HT");
    }
    for (int i = 0; i < 5; i++) {
        char reply[1024];
        read_all(stalled[i], reply, sizeof reply, 20000);
        close(stalled[i]);
        busy += !strncmp(reply, "HTTP/1.1 503 Service Unavailable\r\n", 34);
        timed_out += !strncmp(reply, "HTTP/1.1 408 Request Timeout\r\n", 30);
    }
    cr_assert(busy == 1 && timed_out == 4, "five stalled requests: %d got 503 and %d got 408, "
              "not 1 and 4", busy, timed_out);
    answer_is("BREW /pot HTTP/1.1\r\nHost: h\r\n\r\n", "HTTP/1.1 405 Method Not Allowed\r\n");
    answer_is("GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n");
    answer_is("GET /%zz HTTP/1.0\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n");
    answer_is("GET / HTTP/2.0\r\n\r\n", "HTTP/1.1 505 HTTP Version Not Supported\r\n");

    /* Half-closed after the request: the whole answer still comes. */
    int fd = dial();
    send_str(fd, "GET / HTTP/1.0\r\n\r\n");
    shutdown(fd, SHUT_WR);
    char reply[1024];
    read_all(fd, reply, sizeof reply, REPLY_MS);
    close(fd);
    cr_assert(strstr(reply, "HTTP/1.1 200 OK\r\n") &&
              strstr(reply, "/blob is 10485760 bytes (the pattern of seed 7)\n"),
              "a half-closed client: %s", reply);

    cr_assert_eq(curl(""), 0, "curl after the hostile clients failed:\n%s", qc.text);
    got_identical("10 MiB after the hostile clients");
    reboot_and_close();
}
