/*
 * moat/http_parse.h — the HTTP/1.x request head parser of moat's web
 * servers (moat-httpd on a host, the bare httpd app domain), pure
 * functions over bytes a remote client sent (hostile: every length
 * bounded, nothing trusted). Freestanding: no libc but memcmp.
 *
 * Served: GET and HEAD. Every answer closes the connection (allowed by
 * HTTP/1.1, RFC 9112 §9.6), so keep-alive and request bodies never arise;
 * a request with a body is refused (400). One byte range ("Range:
 * bytes=A-B", "bytes=A-", "bytes=-N") is understood (RFC 9110 §14);
 * anything else in a Range header is ignored, as §14.2 allows, and the
 * whole resource is answered.
 */
#ifndef MOAT_HTTP_PARSE_H
#define MOAT_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_HEAD_MAX  8192u     /* request line and headers */
#define HTTP_PATH_MAX  1024u     /* decoded URL path */

enum http_method { HTTP_GET, HTTP_HEAD };

enum http_range_kind {
    HTTP_RANGE_NONE,            /* no Range, or one ignored */
    HTTP_RANGE_SPAN,            /* bytes=first-last, or first- (last UINT64_MAX) */
    HTTP_RANGE_SUFFIX,          /* bytes=-suffix: the last suffix bytes */
};

struct http_request {
    enum http_method method;
    char path[HTTP_PATH_MAX];   /* decoded, NUL-terminated, query dropped */
    unsigned minor;             /* HTTP/1.minor */
    enum http_range_kind range;
    uint64_t first, last, suffix;
};

/* Parse the head in buf[0..len). Returns 0 with *req filled and
 * *head_len the bytes up to and including the blank line; 1 when more
 * bytes are needed (no blank line yet and len < HTTP_HEAD_MAX); or the
 * status to answer with: 400 (malformed, a body), 405 (not GET/HEAD),
 * 414 (path too long), 431 (head over HTTP_HEAD_MAX), 505 (not HTTP/1.x). */
int http_parse(const char *buf, size_t len, struct http_request *req, size_t *head_len);

/* What to answer for a resource of size bytes: 200 (the whole of it:
 * *off 0, *len size), 206 (the range asked, clipped to the end: bytes
 * [*off, *off + *len)), or 416 (a range that starts past the end, or an
 * empty suffix). */
int http_range_select(const struct http_request *req, uint64_t size, uint64_t *off,
                      uint64_t *len);

/* The reason phrase of status ("OK", "Not Found", ...). */
const char *http_reason(int status);

#endif /* MOAT_HTTP_PARSE_H */
