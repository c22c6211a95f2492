/*
 * http.h — the HTTP/1.x request head parser and URL-to-file mapping of
 * moat-httpd, pure functions over bytes a remote client sent (hostile:
 * every length bounded, nothing trusted).
 *
 * Served: GET and HEAD of static files. Every answer closes the
 * connection (allowed by HTTP/1.1, RFC 9112 §9.6), so keep-alive and
 * request bodies never arise; a request with a body is refused (400).
 */
#ifndef MOAT_HTTP_H
#define MOAT_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#define HTTP_HEAD_MAX  8192u     /* request line and headers */
#define HTTP_PATH_MAX  1024u     /* decoded URL path */

enum http_method { HTTP_GET, HTTP_HEAD };

struct http_request {
    enum http_method method;
    char path[HTTP_PATH_MAX];   /* decoded, NUL-terminated, query dropped */
    unsigned minor;             /* HTTP/1.minor */
};

/* Parse the head in buf[0..len). Returns 0 with *req filled and
 * *head_len the bytes up to and including the blank line; 1 when more
 * bytes are needed (no blank line yet and len < HTTP_HEAD_MAX); or the
 * status to answer with: 400 (malformed, a body), 405 (not GET/HEAD),
 * 414 (path too long), 431 (head over HTTP_HEAD_MAX), 505 (not HTTP/1.x). */
int http_parse(const char *buf, size_t len, struct http_request *req, size_t *head_len);

/* The file for a decoded URL path under root: "/" and paths ending in
 * "/" get "index.html"; a "." or ".." segment, a NUL or a backslash is
 * refused (403), as is anything that does not start with "/" (400).
 * Returns 0 with the path in out, or the status. */
int http_resolve(const char *root, const char *url_path, char *out, size_t outlen);

/* The reason phrase of status ("OK", "Not Found", ...). */
const char *http_reason(int status);
/* The Content-Type for a file name, by extension. */
const char *http_content_type(const char *path);

#endif /* MOAT_HTTP_H */
