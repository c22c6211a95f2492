/* Default control socket path (contract in moat/libmoat.h). moat and every
 * client use this one function, so they always agree. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "moat/libmoat.h"

const char *moat_default_socket(void)
{
    static char path[108];
    const char *env = getenv("MOAT_SOCKET");
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (env && *env)
        snprintf(path, sizeof path, "%s", env);
    else if (xdg && *xdg)
        snprintf(path, sizeof path, "%s/moat.sock", xdg);
    else
        snprintf(path, sizeof path, "/tmp/moat-%u/moat.sock", (unsigned)getuid());
    return path;
}
