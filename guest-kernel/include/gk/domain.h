/*
 * gk/domain.h — what a domain image provides to the guest kernel: its
 * main function, called after the kernel is fully up (interrupts on, timer
 * ticking) with the domain's arguments. Returning stops the domain with
 * exit code 0; a domain that serves calls gk_run() and never returns.
 */
#ifndef GK_DOMAIN_H
#define GK_DOMAIN_H

void domain_main(const char *cmdline);

#endif /* GK_DOMAIN_H */
