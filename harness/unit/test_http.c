/* The request parser both web servers share (shared/src/http_parse.c) and
 * moat-httpd's file mapping (clients/moat-httpd/http.c) over hostile
 * input: well-formed GET and HEAD, requests that arrive in pieces, and
 * every refusal with its status — unknown methods, bad request lines,
 * oversized heads and paths, bodies, missing Host, bad escapes and NULs,
 * and path traversal however it is spelled; byte ranges, the ones
 * understood and the ones ignored, clipped to the resource or refused
 * (416). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include "moat-httpd/http.h"

static int parse(const char *s, struct http_request *r, size_t *hl)
{
    return http_parse(s, strlen(s), r, hl);
}

Test(http, get_and_head_parse)
{
    struct http_request r;
    size_t hl = 0;
    const char *get = "GET /a/b.txt?x=1 HTTP/1.1\r\nHost: h\r\nUser-Agent: t\r\n\r\nextra";
    cr_assert_eq(parse(get, &r, &hl), 0);
    cr_assert_eq(r.method, HTTP_GET);
    cr_assert_str_eq(r.path, "/a/b.txt", "the query is dropped, got %s", r.path);
    cr_assert_eq(r.minor, 1);
    cr_assert_eq(hl, strlen(get) - strlen("extra"), "the head ends at the blank line");
    cr_assert_eq(parse("HEAD / HTTP/1.0\r\n\r\n", &r, &hl), 0, "HTTP/1.0 needs no Host");
    cr_assert_eq(r.method, HTTP_HEAD);
    cr_assert_eq(parse("GET /%41%62%2f HTTP/1.0\r\n\r\n", &r, &hl), 0);
    cr_assert_str_eq(r.path, "/Ab/", "percent escapes are decoded, got %s", r.path);
}

Test(http, a_request_in_pieces_asks_for_more)
{
    const char *full = "GET /x HTTP/1.1\r\nHost: h\r\n\r\n";
    struct http_request r;
    size_t hl;
    for (size_t n = 0; n < strlen(full); n++)
        cr_assert_eq(http_parse(full, n, &r, &hl), 1, "%zu of %zu bytes is not a request yet", n,
                     strlen(full));
    cr_assert_eq(http_parse(full, strlen(full), &r, &hl), 0);
}

Test(http, malformed_requests_get_their_status)
{
    static const struct { const char *req; int status; } cases[] = {
        { "POST / HTTP/1.1\r\nHost: h\r\n\r\n", 405 },
        { "DELETE /x HTTP/1.0\r\n\r\n", 405 },
        { " / HTTP/1.0\r\n\r\n", 400 },
        { "GET HTTP/1.0\r\n\r\n", 400 },
        { "GET  HTTP/1.0\r\n\r\n", 400 },
        { "GET / HTTP/2.0\r\n\r\n", 505 },
        { "GET / FTP/1.0\r\n\r\n", 400 },
        { "GET / HTTP/1.x\r\n\r\n", 400 },
        { "GET x HTTP/1.0\r\n\r\n", 400 },                       /* not origin form */
        { "GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
        { "GET / HTTP/1.1\r\n\r\n", 400 },                       /* no Host */
        { "GET / HTTP/1.1\r\nHost h\r\n\r\n", 400 },             /* no colon */
        { "GET / HTTP/1.1\r\n: h\r\nHost: h\r\n\r\n", 400 },     /* empty name */
        { "GET / HTTP/1.1\r\nHo st: h\r\n\r\n", 400 },           /* space in the name */
        { "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n", 400 },
        { "GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", 400 },
        { "GET /%4 HTTP/1.0\r\n\r\n", 400 },                     /* short escape */
        { "GET /%zz HTTP/1.0\r\n\r\n", 400 },
        { "GET /a%00b HTTP/1.0\r\n\r\n", 400 },                  /* NUL */
        { "GET / HTTP/1.0\nHost: h\r\n\r\n", 400 },              /* bare LF */
        { "GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", 400 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct http_request r;
        size_t hl;
        int st = parse(cases[i].req, &r, &hl);
        cr_assert_eq(st, cases[i].status, "case %zu (%s): status %d, want %d", i, cases[i].req, st,
                     cases[i].status);
    }
    struct http_request r;
    size_t hl;
    cr_assert_eq(parse("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", &r, &hl), 0,
                 "an empty body is no body");
}

Test(http, oversized_heads_and_paths_are_refused)
{
    static char big[HTTP_HEAD_MAX + 64];
    struct http_request r;
    size_t hl;
    /* Headers that never end: refused once HTTP_HEAD_MAX bytes came. */
    int n = snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: h\r\nX: ");
    memset(big + n, 'a', sizeof big - (size_t)n);
    cr_assert_eq(http_parse(big, HTTP_HEAD_MAX - 1, &r, &hl), 1, "below the limit: more");
    cr_assert_eq(http_parse(big, HTTP_HEAD_MAX, &r, &hl), 431, "at the limit: 431");
    cr_assert_eq(http_parse(big, sizeof big, &r, &hl), 431, "past the limit: 431");
    /* A path longer than HTTP_PATH_MAX in a head that fits. */
    n = snprintf(big, sizeof big, "GET /");
    memset(big + n, 'p', HTTP_PATH_MAX + 10);
    snprintf(big + n + HTTP_PATH_MAX + 10, 64, " HTTP/1.0\r\n\r\n");
    cr_assert_eq(parse(big, &r, &hl), 414);
}

Test(http, traversal_is_refused_however_spelled)
{
    char out[256];
    static const char *const bad[] = { "/..", "/../etc/passwd", "/a/../../b", "/a/..", "/./a",
                                       "/a/.", "/a\\..\\b", "/..\\x" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(http_resolve("/srv", bad[i], out, sizeof out), 403, "%s was not refused",
                     bad[i]);
    /* Escapes are decoded before the check: %2e%2e is "..". */
    struct http_request r;
    size_t hl;
    cr_assert_eq(parse("GET /%2e%2e/etc/passwd HTTP/1.0\r\n\r\n", &r, &hl), 0);
    cr_assert_eq(http_resolve("/srv", r.path, out, sizeof out), 403, "decoded %s was served",
                 r.path);
    cr_assert_eq(http_resolve("/srv", "relative", out, sizeof out), 400);
    /* Names that merely contain dots are fine. */
    cr_assert_eq(http_resolve("/srv", "/a..b/.c/..d", out, sizeof out), 0);
    cr_assert_str_eq(out, "/srv/a..b/.c/..d");
    cr_assert_eq(http_resolve("/srv", "/", out, sizeof out), 0);
    cr_assert_str_eq(out, "/srv/index.html");
    cr_assert_eq(http_resolve("/srv", "/d/", out, sizeof out), 0);
    cr_assert_str_eq(out, "/srv/d/index.html");
    cr_assert_eq(http_resolve("/srv", "/x", out, 6), 414, "a path that does not fit");
}

Test(http, reasons_and_content_types)
{
    cr_assert_str_eq(http_reason(404), "Not Found");
    cr_assert_str_eq(http_reason(431), "Request Header Fields Too Large");
    cr_assert_str_eq(http_content_type("/a/b.HTML"), "text/html; charset=utf-8");
    cr_assert_str_eq(http_content_type("/a.d/b"), "application/octet-stream",
                     "a dot in a directory name is no extension");
}

static int range_of(const char *range, uint64_t size, uint64_t *off, uint64_t *len)
{
    char req[256];
    snprintf(req, sizeof req, "GET /f HTTP/1.1\r\nHost: h\r\nRange:%s\r\n\r\n", range);
    struct http_request r;
    size_t hl;
    cr_assert_eq(parse(req, &r, &hl), 0, "a Range header never makes a request bad: %s", range);
    return http_range_select(&r, size, off, len);
}

Test(http, one_byte_range_is_answered_clipped_to_the_end)
{
    static const struct { const char *range; int status; uint64_t off, len; } cases[] = {
        { " bytes=0-99", 206, 0, 100 },
        { " bytes=100-", 206, 100, 900 },
        { "bytes=999-999", 206, 999, 1 },
        { " BYTES=10-20 ", 206, 10, 11 },          /* the unit without case, spaces around */
        { " bytes=900-5000", 206, 900, 100 },      /* clipped to the end */
        { " bytes=-10", 206, 990, 10 },            /* the last 10 */
        { " bytes=-5000", 206, 0, 1000 },          /* a suffix longer than all of it */
        { " bytes=1000-", 416, 0, 1000 },          /* starts past the end */
        { " bytes=-0", 416, 0, 1000 },             /* nothing asked */
        { " bytes=5-1", 200, 0, 1000 },            /* invalid: ignored */
        { " bytes=0-1,5-6", 200, 0, 1000 },        /* several: ignored */
        { " items=0-1", 200, 0, 1000 },            /* another unit: ignored */
        { " bytes=", 200, 0, 1000 },
        { " bytes=x-", 200, 0, 1000 },
        { " bytes=1-2x", 200, 0, 1000 },
        { " bytes=99999999999999999999-", 200, 0, 1000 },  /* past 64 bits: ignored */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t off = 7, len = 7;
        int st = range_of(cases[i].range, 1000, &off, &len);
        cr_assert_eq(st, cases[i].status, "Range:%s on 1000 bytes: %d, not %d", cases[i].range,
                     st, cases[i].status);
        cr_assert(off == cases[i].off && len == cases[i].len,
                  "Range:%s on 1000 bytes: [%lu, +%lu), not [%lu, +%lu)", cases[i].range,
                  (unsigned long)off, (unsigned long)len, (unsigned long)cases[i].off,
                  (unsigned long)cases[i].len);
    }
    struct http_request r;
    size_t hl;
    uint64_t off, len;
    cr_assert_eq(parse("GET /f HTTP/1.0\r\n\r\n", &r, &hl), 0);
    cr_assert_eq(http_range_select(&r, 1000, &off, &len), 200, "no Range: all of it");
    cr_assert(off == 0 && len == 1000);
    cr_assert_eq(range_of(" bytes=0-", 0, &off, &len), 416, "any range of nothing is refused");
    cr_assert_str_eq(http_reason(206), "Partial Content");
    cr_assert_str_eq(http_reason(416), "Range Not Satisfiable");
}
