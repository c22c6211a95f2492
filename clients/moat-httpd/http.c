/* moat-httpd's URL-to-file mapping and content types (contract in http.h). */
#include "http.h"
#include <stdio.h>
#include <string.h>
#include <strings.h>

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
