/* Setting a domain up: its image, its threads' CPUs, its DMA windows,
 * and each incarnation's VM (contract in domain.h and domain_internal.h). */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "boot_setup.h"
#include "devices.h"
#include "domain.h"
#include "elf_load.h"
#include "enum_name.h"
#include "capsvc.h"
#include "moat/session_abi.h"
#include "log.h"
#include "moat/layout.h"
#include "domain_internal.h"
#include "supervisor.h"


#define DOMAIN_IMAGE_MAX (64u << 20)

static void console_sink(void *ctx, const char *line, size_t len)
{
    struct domain *d = ctx;
    char buf[UART_LINE_MAX + MOAT_NAME_MAX + 8];
    if (d->log_fd >= 0) {
        memcpy(buf, line, len);
        buf[len] = '\n';
        ssize_t w = write(d->log_fd, buf, len + 1);
        (void)w;
    }
    if (d->cfg.console_echo || d->sup->echo_all) {
        int n = snprintf(buf, sizeof buf, "[%s] %.*s\n", d->cfg.name, (int)len, line);
        if (n > 0) {
            ssize_t w = write(STDOUT_FILENO, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf);
            (void)w;
        }
    }
}

/* ---- setup -------------------------------------------------------------- */

/* The kernel image opened, its size in *len; -1 and err when it cannot be
 * a domain's image. */
static int open_image(const char *path, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(err, errlen, "cannot read kernel image %s: %s (build it with 'make')", path,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > DOMAIN_IMAGE_MAX) {
        snprintf(err, errlen, "kernel image %s is not a regular file of 1 byte to %u MiB", path,
                 DOMAIN_IMAGE_MAX >> 20);
        close(fd);
        return -1;
    }
    *len = (size_t)st.st_size;
    return fd;
}

bool domain_check_image(const struct domain_config *cfg, char *err, size_t errlen)
{
    size_t len;
    int fd = open_image(cfg->kernel, &len, err, errlen);
    if (fd >= 0)
        close(fd);
    return fd >= 0;
}

static bool read_image(struct domain *d, char *err, size_t errlen)
{
    int fd = open_image(d->cfg.kernel, &d->image_len, err, errlen);
    if (fd < 0)
        return false;
    d->image = malloc(d->image_len);
    size_t got = 0;
    while (d->image && got < d->image_len) {
        ssize_t n = read(fd, d->image + got, d->image_len - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (!d->image || got != d->image_len) {
        snprintf(err, errlen, "cannot read kernel image %s completely", d->cfg.kernel);
        free(d->image);
        d->image = NULL;
        return false;
    }
    return true;
}

/* cpu=N: the vCPU on N alone, device workers on every other CPU moat may
 * use (so a polling vCPU and the controller it drives never share one). */
static bool place_threads(struct domain *d, char *err, size_t errlen)
{
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) {
        snprintf(err, errlen, "cpu=%u: cannot read moat's CPU affinity: %s", d->cfg.cpu,
                 strerror(errno));
        return false;
    }
    if (!CPU_ISSET(d->cfg.cpu, &allowed)) {
        snprintf(err, errlen, "cpu=%u: moat may run on %d CPU(s) and this is not one of them "
                 "(see nproc and taskset -p %d)", d->cfg.cpu, CPU_COUNT(&allowed), (int)getpid());
        return false;
    }
    CPU_ZERO(&d->vcpu_cpus);
    CPU_SET(d->cfg.cpu, &d->vcpu_cpus);
    CPU_CLR(d->cfg.cpu, &allowed);
    if (CPU_COUNT(&allowed) > 0) {
        pci_bus_set_worker_cpus(&d->pci, &allowed);
        log_info(d->cfg.name, "vCPU pinned to CPU %u, device workers on the %d other CPU(s)",
                 d->cfg.cpu, CPU_COUNT(&allowed));
    } else {
        log_info(d->cfg.name, "cpu=%u is the only CPU moat may use: device workers share it",
                 d->cfg.cpu);
    }
    return true;
}

bool domain_init(struct domain *d, const struct domain_config *cfg, uint32_t id,
                 struct supervisor *sup, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    d->cfg = *cfg;
    d->id = id;
    d->sup = sup;
    d->state = DOMAIN_CREATED;
    d->log_fd = -1;
    d->vm.fd = d->vm.vcpu_fd = -1;
    atomic_init(&d->stop, false);
    atomic_init(&d->thread_started, false);
    pthread_mutex_init(&d->end.lock, NULL);
    restart_budget_init(&d->budget, cfg->restart_max ? cfg->restart_max : RESTART_DEFAULT_MAX,
                        cfg->restart_window_ms ? cfg->restart_window_ms
                                               : RESTART_DEFAULT_WINDOW_MS);
    domain_kick_setup();
    if (!read_image(d, err, errlen))
        return false;
    if (!bus_init(&d->pio, 8) || !bus_init(&d->mmio, 16)) {
        snprintf(err, errlen, "out of memory");
        domain_fini(d);
        return false;
    }
    d->plat = (struct platform_dev){ .ops = &domain_plat_ops, .ctx = d };
    struct pci_platform_ops pops = domain_pci_ops;
    pops.ctx = d;
    pci_bus_init(&d->pci, cfg->name, id, &sup->broker, &pops);
    if (cfg->pin_cpu && !place_threads(d, err, errlen)) {
        domain_fini(d);
        return false;
    }
    for (uint32_t i = 0; i < cfg->n_devices; i++) {
        char name[MOAT_DEVNAME_MAX];
        snprintf(name, sizeof name, "%.12s%u", cfg->devices[i], i % 8);
        if (!device_create(cfg->devices[i], name, cfg->device_opts[i], &d->pci, err, errlen)) {
            domain_fini(d);
            return false;
        }
    }
    if (!bus_register(&d->pio, UART_COM1_BASE, UART_PORTS, uart_io, &d->com1, "com1") ||
        !bus_register(&d->pio, MOAT_PLAT_PORT_BASE, MOAT_PLAT_PORT_COUNT, platform_dev_io,
                      &d->plat, "platform") ||
        !bus_register(&d->mmio, MOAT_GPA_PLATFORM_MMIO, MOAT_PLAT_MMIO_SIZE, platform_dev_mmio,
                      &d->plat, "platform-mmio") ||
        !pci_bus_attach(&d->pci, &d->mmio, &d->pio)) {
        snprintf(err, errlen, "internal: cannot register platform devices");
        domain_fini(d);
        return false;
    }
    char path[PATH_MAX + MOAT_NAME_MAX + 8];
    snprintf(path, sizeof path, "%s/%s.log", sup->log_dir, cfg->name);
    d->log_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (d->log_fd < 0) {
        snprintf(err, errlen, "cannot create domain log %s: %s (choose another --log-dir)",
                 path, strerror(errno));
        domain_fini(d);
        return false;
    }
    return true;
}

/* Ask the broker for this incarnation's DMA windows (mapped into the VM). */
static bool grant_windows(struct domain *d, char *err, size_t errlen)
{
    d->n_win = 0;
    for (uint32_t i = 0; i < d->cfg.dma_windows && i < MOAT_WINDOWS_MAX; i++) {
        uint64_t iova;
        char why[160];
        if (!broker_grant_any(&d->sup->broker, d->id, d->cfg.dma_window_size, 2ull << 20,
                              DMA_BIDIR, &d->win[i], &iova, why, sizeof why)) {
            snprintf(err, errlen, "DMA window %u of %llu MiB: %s", i,
                     (unsigned long long)(d->cfg.dma_window_size >> 20), why);
            return false;
        }
        d->win_info[i] = (struct moat_window_info){ .iova = iova, .size = d->cfg.dma_window_size,
                                                    .dirs = DMA_BIDIR };
        d->n_win++;
        log_info(d->cfg.name, "DMA window %u: IOVA 0x%llx, %llu MiB", i,
                 (unsigned long long)iova, (unsigned long long)(d->cfg.dma_window_size >> 20));
    }
    return true;
}

/* Build the next incarnation (state CREATED, no lock held): a fresh VM,
 * power-on devices, fresh windows; on success it is BOOTING and its end
 * box is empty. On failure the caller ends it (finish_incarnation). */
bool domain_build_incarnation(struct domain *d, char *err, size_t errlen)
{
    struct supervisor *s = d->sup;
    uint64_t t0 = clock_mono_ns();
    bool ok = false;
    memset(&d->boot_st, 0, sizeof d->boot_st);
    d->boot_st.start_ns = t0;
    uart_init(&d->com1, console_sink, d);
    pci_bus_reset(&d->pci);     /* every incarnation meets power-on devices */
    if (!vm_create(&d->vm, &s->host, d->cfg.ram_size, err, errlen))
        goto out;
    d->boot_st.vm_ns = clock_mono_ns();
    supervisor_set_vm(s, d->id, &d->vm);
    if (!grant_windows(d, err, errlen))
        goto out;
    d->boot_st.windows_ns = clock_mono_ns();
    struct elf_layout lay;
    uint64_t cr3 = 0, ram_free = 0;
    if (!elf_load(d->image, d->image_len, d->vm.ram, d->vm.ram_size, MOAT_GPA_KERNEL_BASE,
                  &lay, err, errlen))
        goto out;
    boot_write_gdt(d->vm.ram);
    const struct kmap_image kimg = { .text_start = lay.text_start, .text_end = lay.text_end,
                                     .rodata_start = lay.rodata_start,
                                     .rodata_end = lay.rodata_end, .end = lay.end };
    if (!boot_write_kernel_map(d->vm.ram, d->vm.ram_size, &kimg, d->win_info, d->n_win,
                               kvm_host_gb_pages(&s->host), &cr3, &ram_free, err, errlen))
        goto out;
    *(struct moat_session_table *)(d->vm.ram + MOAT_GPA_SESSION_TABLE) =
        (struct moat_session_table){ .magic = MOAT_SESSION_TABLE_MAGIC, .version = 1,
                                     .n_slots = MOAT_SESSION_SLOTS };
    d->boot_st.image_ns = clock_mono_ns();
    if (!vm_create_vcpu(&d->vm, &s->host, err, errlen))     /* after every memslot: vm.h */
        goto out;
    struct moat_device_info devs[MOAT_DEVICES_MAX];
    uint32_t n_devs = 0;
    for (unsigned slot = 1; slot < PCI_SLOTS_MAX && n_devs < MOAT_DEVICES_MAX; slot++)
        if (d->pci.slot[slot])
            pci_func_describe(d->pci.slot[slot], &devs[n_devs++]);
    struct boot_params bp = {
        .name = d->cfg.name, .cmdline = d->cfg.cmdline, .domain_id = d->id,
        .tsc_khz = d->vm.tsc_khz, .ecam_base = d->pci.ecam_base,
        .windows = d->win_info, .n_windows = d->n_win, .devices = devs, .n_devices = n_devs,
        .kernel_map = cr3, .ram_free = ram_free,
    };
    if (!boot_write_info(d->vm.ram, d->vm.ram_size, &bp)) {
        snprintf(err, errlen, "domain name or args too long for boot info");
        goto out;
    }
    if (!vm_enter_long_mode(&d->vm, lay.entry, MOAT_GPA_BOOT_INFO, cr3, err, errlen))
        goto out;
    d->boot_st.vcpu_ns = clock_mono_ns();
    ok = true;
out:
    pthread_mutex_lock(&s->lock);
    d->attempts++;
    d->last_start_ok = ok;
    d->incarnation++;
    d->t_start_ns = t0;
    d->session_vector = 0;
    d->slots_draining = 0;      /* served_caps stays: a driver domain remains one */
    pthread_mutex_lock(&d->end.lock);
    d->end.decided = false;
    d->end.t_ns = 0;
    pthread_mutex_unlock(&d->end.lock);
    atomic_store(&d->stop, false);
    if (ok) {
        d->vm_live = true;
        domain_set_state(d, DOMAIN_BOOTING);
        /* An operator restart asked for while this one was being built:
         * this fresh incarnation is it. */
        if (d->cmd == DOMAIN_CMD_RESTART) {
            d->cmd = DOMAIN_CMD_NONE;
            restart_budget_clear(&d->budget);
        }
        /* A stop or shutdown that came while it was being built ends it
         * at once (they found nothing running to end). */
        if (d->want_down || d->cmd == DOMAIN_CMD_SHUTDOWN)
            domain_end_post(d, DOMAIN_STOPPED, NULL, 0);
    }
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
    return ok;
}

/* The first incarnation could not start (no domain thread runs): tear
 * down what was built, CRASHED with the reason; no restart follows. */
