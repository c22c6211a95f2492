/*
 * fuzz_http_parse — the request head parser both web servers share
 * (shared/src/http_parse.c: moat-httpd on a host, the bare httpd app
 * domain) over whatever a remote client sends, and the byte range it
 * selects from what was parsed.
 *
 * Input: the request head's bytes, whole. Checks beyond the sanitizers:
 *  - the answer is 0, 1 or one of the statuses the contract names, and 1
 *    only while no blank line is in the first HTTP_HEAD_MAX bytes;
 *  - a parsed request: head_len within the input and ending at a blank
 *    line, a decoded path that starts with '/', is NUL-terminated inside
 *    its array and holds no NUL before, a version minor of one digit;
 *  - http_range_select on sizes around the range asked: 200 exactly when
 *    no range was understood (all of it), 206 a non-empty span inside the
 *    resource and the one asked (clipped to the end), 416 only for a
 *    range that starts past the end or an empty suffix.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "moat/http_parse.h"

#define CHECK(c, ...)                                                                   \
    do {                                                                                \
        if (!(c)) {                                                                     \
            fprintf(stderr, "fuzz_http_parse: " __VA_ARGS__);                           \
            fputc('\n', stderr);                                                        \
            abort();                                                                    \
        }                                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_range(const struct http_request *r, uint64_t res)
{
    uint64_t off = 1, len = 1;
    int st = http_range_select(r, res, &off, &len);
    switch (st) {
    case 200:
        CHECK(r->range == HTTP_RANGE_NONE && off == 0 && len == res, "200 but a range was asked "
              "or not all of it: [%lu, +%lu) of %lu", off, len, res);
        break;
    case 206:
        CHECK(r->range != HTTP_RANGE_NONE && len >= 1 && off < res && len <= res - off,
              "206 outside the resource: [%lu, +%lu) of %lu", off, len, res);
        if (r->range == HTTP_RANGE_SPAN)
            CHECK(off == r->first && (off + len - 1 == r->last || off + len == res),
                  "206 not the span asked: [%lu, +%lu) for %lu-%lu of %lu", off, len, r->first,
                  r->last, res);
        else
            CHECK(off + len == res && (len == r->suffix || (off == 0 && r->suffix > res)),
                  "206 not the suffix asked: [%lu, +%lu) for -%lu of %lu", off, len, r->suffix,
                  res);
        break;
    case 416:
        CHECK((r->range == HTTP_RANGE_SPAN && r->first >= res) ||
              (r->range == HTTP_RANGE_SUFFIX && (r->suffix == 0 || res == 0)),
              "416 for a range that fits: kind %d of %lu", r->range, res);
        break;
    default:
        CHECK(0, "http_range_select answered %d", st);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy exactly as long as the input: any read past it is ASan's. */
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    struct http_request r;
    memset(&r, 0xa5, sizeof r);
    size_t head_len = (size_t)-1;
    int rc = http_parse(buf, size, &r, &head_len);
    bool blank = false;
    size_t scan = size < HTTP_HEAD_MAX ? size : HTTP_HEAD_MAX;
    for (size_t i = 0; i + 4 <= scan && !blank; i++)
        blank = !memcmp(buf + i, "\r\n\r\n", 4);
    switch (rc) {
    case 1:
        CHECK(!blank && size < HTTP_HEAD_MAX, "asked for more with a head complete");
        break;
    case 0:
        CHECK(head_len >= 4 && head_len <= size && !memcmp(buf + head_len - 4, "\r\n\r\n", 4),
              "head_len %zu does not end at a blank line in %zu bytes", head_len, size);
        CHECK(memchr(r.path, '\0', sizeof r.path) != NULL, "the path is not terminated");
        CHECK(r.path[0] == '/', "the path does not start with /");
        CHECK(r.minor <= 9, "minor version %u", r.minor);
        CHECK(r.method == HTTP_GET || r.method == HTTP_HEAD, "method %d", r.method);
        CHECK(r.range == HTTP_RANGE_NONE || r.range == HTTP_RANGE_SPAN ||
              r.range == HTTP_RANGE_SUFFIX, "range kind %d", r.range);
        if (r.range == HTTP_RANGE_SPAN)
            CHECK(r.first <= r.last, "a span %lu-%lu kept", r.first, r.last);
        {
            uint64_t sizes[] = { 0, 1, 1000, r.first, r.first + 1, r.last, r.last + 1, r.suffix,
                                 r.suffix + 1, UINT64_MAX };
            for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
                check_range(&r, sizes[i]);
        }
        break;
    case 400: case 405: case 414: case 431: case 505:
        CHECK(rc != 431 || !blank, "431 with a blank line in the first HTTP_HEAD_MAX bytes");
        break;
    default:
        CHECK(0, "http_parse answered %d", rc);
    }
    free(buf);
    return 0;
}
