/* moat — entry point: parse, start domains, supervise, report. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include "control.h"
#include "log.h"
#include "moat/libmoat.h"
#include "netback.h"
#include "options.h"
#include "supervisor.h"

#define EXIT_CRASHED 1
#define EXIT_USAGE   2
#define EXIT_NO_KVM  3

static sigset_t stop_signals;

static void *signal_thread(void *arg)
{
    struct supervisor *s = arg;
    int sig;
    if (sigwait(&stop_signals, &sig) == 0) {
        log_info(NULL, "%s received, stopping every domain", strsignal(sig));
        supervisor_interrupt(s);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    static struct moat_config cfg;
    static struct netback_config net;
    char err[512];
    switch (options_parse(argc, argv, &cfg, &net, stdout, err, sizeof err)) {
    case OPTIONS_EXIT_OK:
        return 0;
    case OPTIONS_ERROR:
        fprintf(stderr, "moat: %s\n", err);
        return EXIT_USAGE;
    case OPTIONS_RUN:
        break;
    }
    log_set_quiet(cfg.quiet);

    /* Every thread inherits this mask; only signal_thread takes them. */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    /* The switch must be configured before any domain creates a NIC port;
     * without network options the first NIC creates it with the defaults. */
    if (options_net_given(&net) && !netback_setup(&net, err, sizeof err)) {
        fprintf(stderr, "moat: %s\n", err);
        return EXIT_USAGE;
    }

    /* A kernel image that cannot be read is the user's to fix, KVM or not. */
    for (size_t i = 0; i < cfg.n_domains; i++) {
        if (!domain_check_image(&cfg.domains[i], err, sizeof err)) {
            fprintf(stderr, "moat: domain %s: %s\n", cfg.domains[i].name, err);
            netback_shutdown();
            return EXIT_USAGE;
        }
    }
    static struct supervisor sup;
    if (!supervisor_init(&sup, &cfg, err, sizeof err)) {
        fprintf(stderr, "moat: %s\n", err);
        netback_shutdown();
        return EXIT_NO_KVM;
    }
    for (size_t i = 0; i < cfg.n_domains; i++) {
        if (!supervisor_add(&sup, &cfg.domains[i], err, sizeof err)) {
            fprintf(stderr, "moat: domain %s: %s\n", cfg.domains[i].name, err);
            supervisor_fini(&sup);
            netback_shutdown();
            return EXIT_USAGE;
        }
    }
    static struct control ctl;
    if (!cfg.no_control &&
        !control_start(&ctl, &sup, cfg.control_path[0] ? cfg.control_path : moat_default_socket(),
                       err, sizeof err)) {
        fprintf(stderr, "moat: %s\n", err);
        supervisor_fini(&sup);
        netback_shutdown();
        return EXIT_USAGE;
    }
    pthread_t sigt;
    pthread_create(&sigt, NULL, signal_thread, &sup);
    pthread_detach(sigt);

    supervisor_start_all(&sup);
    unsigned timeout_ms = cfg.timeout_s ? cfg.timeout_s * 1000u : 0xFFFFFFFFu;
    if (cfg.until_ready) {
        if (supervisor_wait_all(&sup, DOMAIN_STATE_BIT(DOMAIN_READY) | DOMAIN_TERMINAL, timeout_ms))
            log_info(NULL, "every domain reached ready or ended; stopping (--until-ready)");
    } else {
        /* With --stay no state satisfies the wait: only a signal or the
         * timeout ends it. */
        supervisor_wait_all(&sup, cfg.stay ? 0u : DOMAIN_TERMINAL, timeout_ms);
    }
    control_stop(&ctl);
    supervisor_stop_all(&sup);

    int crashed = 0;
    for (size_t i = 0; i < sup.n_domains; i++)
        if (sup.domains[i]->state == DOMAIN_CRASHED)
            crashed++;
    log_info(NULL, "%zu domain(s) ended, %d crashed; logs in %s/", sup.n_domains, crashed,
             sup.log_dir);
    supervisor_fini(&sup);
    netback_shutdown();
    return crashed ? EXIT_CRASHED : 0;
}
