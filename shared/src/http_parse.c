/* HTTP/1.x request heads (contract in moat/http_parse.h). Freestanding:
 * built into the host's libmoat and the bare app domains alike. */
#include "moat/http_parse.h"

/* memchr, which a freestanding build has not. */
static const char *find(const char *s, char c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == c)
            return s + i;
    return NULL;
}

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

/* Does s start with lowercase name, letters compared without case? The
 * caller has checked the length. */
static bool name_is(const char *s, const char *name)
{
    for (; *name; s++, name++)
        if (lower(*s) != *name)
            return false;
    return true;
}

/* Decimal digits at [*p, end) into *v: false when there are none or the
 * number passes UINT64_MAX. */
static bool number(const char **p, const char *end, uint64_t *v)
{
    const char *s = *p;
    *v = 0;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        uint64_t d = (uint64_t)(*s - '0');
        if (*v > (UINT64_MAX - d) / 10)
            return false;
        *v = *v * 10 + d;
    }
    if (s == *p)
        return false;
    *p = s;
    return true;
}

/* A Range value "bytes=A-B", "bytes=A-" or "bytes=-N" (optional spaces
 * around it). Anything else (another unit, several ranges, B < A) leaves
 * req->range NONE: ignored (RFC 9110 §14.2). */
static void parse_range(const char *v, size_t n, struct http_request *req)
{
    const char *end = v + n, *p = v;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (n < 7 || !name_is(p, "bytes="))
        return;
    p += 6;
    uint64_t a = 0, b = UINT64_MAX;
    if (p < end && *p == '-') {
        p++;
        if (!number(&p, end, &a) || p != end)
            return;
        req->range = HTTP_RANGE_SUFFIX;
        req->suffix = a;
        return;
    }
    if (!number(&p, end, &a) || p == end || *p++ != '-')
        return;
    if (p != end && (!number(&p, end, &b) || p != end || b < a))
        return;
    req->range = HTTP_RANGE_SPAN;
    req->first = a;
    req->last = b;
}

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
        if (!__builtin_memcmp(buf + i, "\r\n\r\n", 4)) {
            end = buf + i;
            break;
        }
    if (!end)
        return len >= HTTP_HEAD_MAX ? 431 : 1;
    *head_len = (size_t)(end - buf) + 4;
    /* Request line: METHOD SP TARGET SP HTTP/1.x CRLF */
    const char *eol = find(buf, '\r', (size_t)(end - buf) + 1);
    if (!eol || eol[1] != '\n' || find(buf, '\n', (size_t)(eol - buf)))
        return 400;             /* lines end in CRLF, never a bare LF */
    const char *sp1 = find(buf, ' ', (size_t)(eol - buf));
    if (!sp1)
        return 400;
    const char *sp2 = find(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
    if (!sp2 || sp2 == sp1 + 1)
        return 400;
    size_t ml = (size_t)(sp1 - buf);
    if (ml == 3 && !__builtin_memcmp(buf, "GET", 3))
        req->method = HTTP_GET;
    else if (ml == 4 && !__builtin_memcmp(buf, "HEAD", 4))
        req->method = HTTP_HEAD;
    else if (ml == 0)
        return 400;
    else
        return 405;
    const char *ver = sp2 + 1;
    size_t vl = (size_t)(eol - ver);
    if (vl != 8 || __builtin_memcmp(ver, "HTTP/1.", 7))
        return vl >= 5 && !__builtin_memcmp(ver, "HTTP/", 5) ? 505 : 400;
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
    req->range = HTTP_RANGE_NONE;
    for (const char *l = eol + 2; l < end + 2;) {
        const char *le = find(l, '\r', (size_t)(end + 2 - l));
        if (!le || le[1] != '\n')
            return 400;
        if (le == l)
            break;
        const char *colon = find(l, ':', (size_t)(le - l));
        if (!colon || colon == l)
            return 400;
        for (const char *p = l; p < colon; p++)
            if (*p == ' ' || *p == '\t' || (unsigned char)*p < 33 || (unsigned char)*p > 126)
                return 400;
        size_t nl = (size_t)(colon - l);
        const char *v = colon + 1;
        while (v < le && (*v == ' ' || *v == '\t'))
            v++;
        if (nl == 4 && name_is(l, "host"))
            host = true;
        if (nl == 17 && name_is(l, "transfer-encoding"))
            return 400;
        if (nl == 5 && name_is(l, "range"))
            parse_range(v, (size_t)(le - v), req);
        if (nl == 14 && name_is(l, "content-length")) {
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


int http_range_select(const struct http_request *req, uint64_t size, uint64_t *off,
                      uint64_t *len)
{
    *off = 0;
    *len = size;
    switch (req->range) {
    case HTTP_RANGE_SPAN:
        if (req->first >= size)
            return 416;
        *off = req->first;
        *len = (req->last >= size - 1 ? size - 1 : req->last) - req->first + 1;
        return 206;
    case HTTP_RANGE_SUFFIX:
        if (req->suffix == 0 || size == 0)
            return 416;
        *len = req->suffix < size ? req->suffix : size;
        *off = size - *len;
        return 206;
    case HTTP_RANGE_NONE:
        break;
    }
    return 200;
}

const char *http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 206: return "Partial Content";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

