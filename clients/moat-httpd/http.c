/* HTTP request parsing and file mapping (contract in http.h). */
#include "http.h"
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode target[0..n) up to '?' into out; false on a bad escape,
 * a NUL or when it does not fit. */
static bool decode_path(const char *t, size_t n, char *out, size_t cap, bool *too_long)
{
    size_t o = 0;
    for (size_t i = 0; i < n && t[i] != '?' && t[i] != '#'; i++) {
        char c = t[i];
        if (c == '%') {
            if (i + 2 >= n)
                return false;
            int hi = hexval(t[i + 1]), lo = hexval(t[i + 2]);
            if (hi < 0 || lo < 0)
                return false;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (c == '\0')
            return false;
        if (o + 1 >= cap) {
            *too_long = true;
            return false;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return true;
}

int http_parse(const char *buf, size_t len, struct http_request *req, size_t *head_len)
{
    size_t scan = len < HTTP_HEAD_MAX ? len : HTTP_HEAD_MAX;
    const char *end = NULL;
    for (size_t i = 0; i + 4 <= scan; i++)
        if (!memcmp(buf + i, "\r\n\r\n", 4)) {
            end = buf + i;
            break;
        }
    if (!end)
        return len >= HTTP_HEAD_MAX ? 431 : 1;
    *head_len = (size_t)(end - buf) + 4;
    /* Request line: METHOD SP TARGET SP HTTP/1.x CRLF */
    const char *eol = memchr(buf, '\r', (size_t)(end - buf) + 1);
    if (!eol || eol[1] != '\n' || memchr(buf, '\n', (size_t)(eol - buf)))
        return 400;             /* lines end in CRLF, never a bare LF */
    const char *sp1 = memchr(buf, ' ', (size_t)(eol - buf));
    if (!sp1)
        return 400;
    const char *sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
    if (!sp2 || sp2 == sp1 + 1)
        return 400;
    size_t ml = (size_t)(sp1 - buf);
    if (ml == 3 && !memcmp(buf, "GET", 3))
        req->method = HTTP_GET;
    else if (ml == 4 && !memcmp(buf, "HEAD", 4))
        req->method = HTTP_HEAD;
    else if (ml == 0)
        return 400;
    else
        return 405;
    const char *ver = sp2 + 1;
    size_t vl = (size_t)(eol - ver);
    if (vl != 8 || memcmp(ver, "HTTP/1.", 7))
        return vl >= 5 && !memcmp(ver, "HTTP/", 5) ? 505 : 400;
    if (ver[7] < '0' || ver[7] > '9')
        return 400;
    req->minor = (unsigned)(ver[7] - '0');
    const char *target = sp1 + 1;
    size_t tl = (size_t)(sp2 - target);
    if (target[0] != '/')
        return 400;             /* origin form only */
    bool too_long = false;
    if (!decode_path(target, tl, req->path, sizeof req->path, &too_long))
        return too_long ? 414 : 400;
    /* Headers: "Name: value" lines; a body (Content-Length other than 0,
     * Transfer-Encoding) is refused; a line without a colon is malformed;
     * HTTP/1.1 needs a Host. */
    bool host = false;
    for (const char *l = eol + 2; l < end + 2;) {
        const char *le = memchr(l, '\r', (size_t)(end + 2 - l));
        if (!le || le[1] != '\n')
            return 400;
        if (le == l)
            break;
        const char *colon = memchr(l, ':', (size_t)(le - l));
        if (!colon || colon == l)
            return 400;
        for (const char *p = l; p < colon; p++)
            if (*p == ' ' || *p == '\t' || (unsigned char)*p < 33 || (unsigned char)*p > 126)
                return 400;
        size_t nl = (size_t)(colon - l);
        const char *v = colon + 1;
        while (v < le && (*v == ' ' || *v == '\t'))
            v++;
        if (nl == 4 && !strncasecmp(l, "Host", 4))
            host = true;
        if (nl == 17 && !strncasecmp(l, "Transfer-Encoding", 17))
            return 400;
        if (nl == 14 && !strncasecmp(l, "Content-Length", 14)) {
            for (const char *p = v; p < le; p++)
                if (*p != '0' && *p != ' ' && *p != '\t')
                    return 400;
            if (v == le)
                return 400;
        }
        for (const char *p = l; p < le; p++)
            if (*p == '\0' || *p == '\n')
                return 400;
        l = le + 2;
    }
    if (req->minor >= 1 && !host)
        return 400;
    return 0;
}

int http_resolve(const char *root, const char *url_path, char *out, size_t outlen)
{
    if (url_path[0] != '/')
        return 400;
    /* Every segment: not "." or "..", no backslash. */
    for (const char *seg = url_path + 1;;) {
        const char *slash = strchr(seg, '/');
        size_t n = slash ? (size_t)(slash - seg) : strlen(seg);
        if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return 403;
        if (memchr(seg, '\\', n))
            return 403;
        if (!slash)
            break;
        seg = slash + 1;
    }
    size_t ul = strlen(url_path);
    const char *index = url_path[ul - 1] == '/' ? "index.html" : "";
    int w = snprintf(out, outlen, "%s%s%s", root, url_path, index);
    if (w < 0 || (size_t)w >= outlen)
        return 414;
    return 0;
}

const char *http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

const char *http_content_type(const char *path)
{
    static const struct { const char *ext, *type; } types[] = {
        { ".html", "text/html; charset=utf-8" }, { ".htm", "text/html; charset=utf-8" },
        { ".txt", "text/plain; charset=utf-8" }, { ".css", "text/css" },
        { ".js", "text/javascript" }, { ".json", "application/json" },
        { ".png", "image/png" }, { ".jpg", "image/jpeg" }, { ".svg", "image/svg+xml" },
    };
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (dot && (!slash || dot > slash))
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (!strcasecmp(dot, types[i].ext))
                return types[i].type;
    return "application/octet-stream";
}
