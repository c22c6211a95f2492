/*
 * kvm_fixture.h — the fixture of a KVM suite that runs one moat (a
 * supervisor and its control socket) per test, with the network backend
 * torn down after: include it once, after criterion.h and testutil.h, and
 * give tests .init = kvm_start, .fini = kvm_finish. Provides sup, ctl,
 * err and sock (the control socket's path) to the suite.
 */
#ifndef MOAT_KVM_FIXTURE_H
#define MOAT_KVM_FIXTURE_H

#include "control.h"
#include "netback.h"
#include "testutil.h"

static struct supervisor sup;
static struct control ctl;
static char err[512];
static char sock[PATH_MAX];

static void kvm_start(void)
{
    TU_REQUIRE_KVM();
    cr_assert(tu_moat_start(&sup, &ctl, NULL, sock, sizeof sock, err, sizeof err), "%s", err);
}

static void kvm_finish(void)
{
    tu_moat_stop(&sup, &ctl);
    netback_shutdown();
}

#endif /* MOAT_KVM_FIXTURE_H */
