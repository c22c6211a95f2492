/*
 * http.h — moat-httpd's URL-to-file mapping and content types. The
 * request head parser, shared with the bare httpd app domain, is
 * moat/http_parse.h. Served: GET and HEAD of static files.
 */
#ifndef MOAT_HTTP_H
#define MOAT_HTTP_H

#include <stddef.h>
#include "moat/http_parse.h"

/* The file for a decoded URL path under root: "/" and paths ending in
 * "/" get "index.html"; a "." or ".." segment, a NUL or a backslash is
 * refused (403), as is anything that does not start with "/" (400).
 * Returns 0 with the path in out, or the status. */
int http_resolve(const char *root, const char *url_path, char *out, size_t outlen);

/* The Content-Type for a file name, by extension. */
const char *http_content_type(const char *path);

#endif /* MOAT_HTTP_H */
