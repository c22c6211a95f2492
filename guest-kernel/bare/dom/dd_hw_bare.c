/* Hardware access of a bare driver domain (contract in dd_internal.h):
 * every configuration and register access is a system call the monitor
 * checks; it interposes on address-bearing registers and doorbells
 * (DESIGN §5.5) and stops the domain on an access outside its device. */
#include "dd_internal.h"
#include "gk/platform.h"
#include "gk/sys.h"

bool dd_hw_present(void) { return platform_boot_info()->n_devices != 0; }

uint32_t dd_hw_cfg_read(unsigned dev, uint32_t off, unsigned width)
{
    return (uint32_t)sys_cfg(dev << 16 | off, width, 0);
}

void dd_hw_cfg_write(unsigned dev, uint32_t off, unsigned width, uint32_t v)
{
    sys_cfg(dev << 16 | off, width | SYS_PIO_WRITE, v);
}

uint64_t dd_hw_mmio_read(uint64_t addr, unsigned width) { return sys_mmio(addr, width, 0); }

void dd_hw_mmio_write(uint64_t addr, unsigned width, uint64_t v)
{
    sys_mmio(addr, width | SYS_PIO_WRITE, v);
}
