/*
 * ctl_fixture.h — moat's control socket without KVM: a supervisor that
 * has its lock, its audit trail, its broker and its capsvc but no KVM
 * handle and no domains, and the real control thread on path. For the
 * control-protocol suite and fuzz target. Header-only.
 */
#ifndef MOAT_CTL_FIXTURE_H
#define MOAT_CTL_FIXTURE_H

#include <string.h>
#include "control.h"
#include "log.h"
#include "supervisor.h"

static inline bool ctl_fixture_start(struct supervisor *sup, struct control *ctl,
                                     const char *path, char *err, size_t errlen)
{
    log_set_quiet(true);            /* every client's connect is an info line */
    memset(sup, 0, sizeof *sup);
    pthread_mutex_init(&sup->lock, NULL);
    pthread_cond_init(&sup->changed, NULL);
    pthread_mutex_init(&sup->vms.lock, NULL);
    audit_init(&sup->audit);
    broker_init(&sup->broker, 1u << 20, NULL);
    return capsvc_init(&sup->caps, sup, err, errlen) &&
           control_start(ctl, sup, path, err, errlen);
}

static inline void ctl_fixture_stop(struct supervisor *sup, struct control *ctl)
{
    control_stop(ctl);
    capsvc_fini(&sup->caps);
    broker_fini(&sup->broker);
    audit_fini(&sup->audit);
}

#endif /* MOAT_CTL_FIXTURE_H */
