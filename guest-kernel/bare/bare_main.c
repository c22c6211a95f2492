/* The kernel booted bare (QEMU, GCE): from mb_entry.S in long mode with
 * the first 4 GiB identity mapped; brings up the console, reads what the
 * loader gave and runs the diagnostics console. */
#include <stdint.h>
#include "com1.h"
#include "monitor.h"
#include "multiboot.h"
#include "trap.h"

void bare_main(uint32_t magic, uint32_t info);

void bare_main(uint32_t magic, uint32_t info)
{
    static struct boot_desc boot;
    com1_init();
    trap_init();
    com1_printf("\nmoat bare kernel\n");
    if (!boot_desc_parse(magic, info, &boot))
        com1_printf("not started by a multiboot loader (magic 0x%x): no memory map\n", magic);
    com1_printf("loaded by %s, %llu MiB usable RAM; type help\n", boot.loader,
                (unsigned long long)(boot.usable_bytes >> 20));
    monitor_run(&boot);
}
