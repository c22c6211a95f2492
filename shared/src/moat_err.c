/* Names of moat error codes (contract in moat/control_abi.h). Freestanding. */
#include "moat/control_abi.h"

const char *moat_err_name(int err)
{
    static const char *const names[MOAT_ERR_MAX + 1] = {
        [MOAT_OK] = "OK", [MOAT_EINVAL] = "EINVAL", [MOAT_ENOENT] = "ENOENT",
        [MOAT_EPERM] = "EPERM", [MOAT_ESTALE] = "ESTALE", [MOAT_EBADCAP] = "EBADCAP",
        [MOAT_EDOWN] = "EDOWN", [MOAT_ELIMIT] = "ELIMIT", [MOAT_EPROTO] = "EPROTO",
        [MOAT_EIO] = "EIO", [MOAT_ENOTSUP] = "ENOTSUP", [MOAT_ECONN] = "ECONN",
        [MOAT_ETIMEDOUT] = "ETIMEDOUT", [MOAT_ENOMEM] = "ENOMEM", [MOAT_EBUSY] = "EBUSY",
        [MOAT_ERANGE] = "ERANGE", [MOAT_EROFS] = "EROFS", [MOAT_ESYS] = "ESYS",
        [MOAT_EFAILED] = "EFAILED", [MOAT_ERESTARTING] = "ERESTARTING",
    };
    if (err < 0)
        err = -err;
    return err <= MOAT_ERR_MAX ? names[err] : "E?";
}
