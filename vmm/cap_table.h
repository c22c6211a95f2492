/*
 * cap_table.h — the VMM's capability table: objects (caps that domains
 * serve, plus the Control cap) and the handles clients hold on them.
 *
 * A handle is an unforgeable 64-bit token: a slot index and that slot's
 * generation, valid only on the connection (client id) that opened it, and
 * carrying the object's generation at open time and a rights mask. Every use
 * goes through cap_check, which fails closed:
 *   -MOAT_EBADCAP  not a live handle of this client (never opened, closed,
 *                  reused slot, another client's, garbage)
 *   -MOAT_ESTALE   the object was restarted or revoked since the open
 *   -MOAT_EPERM    the handle lacks a right the operation needs
 * An object's generation moves on revoke and when its domain goes down, so
 * every older handle is stale forever; when the domain's next incarnation
 * registers the cap again the object comes back up under the same name.
 *
 * Not thread-safe: the caller (capsvc) serialises. Pure: no I/O, no KVM,
 * so the Criterion suite drives it directly.
 */
#ifndef MOAT_CAP_TABLE_H
#define MOAT_CAP_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "moat/control_abi.h"

#define CAP_OBJECTS_MAX         64u
#define CAP_HANDLES_MAX         1024u
#define CAP_HANDLES_PER_CLIENT  64u
#define CAP_PER_DOMAIN_MAX      4u
#define CAP_NO_DOMAIN           0xFFFFFFFFu

struct cap_object {
    bool used;
    bool up;
    uint32_t kind;              /* enum moat_cap_kind */
    char name[MOAT_NAME_LEN];   /* "<domain>.<suffix>" or "control" */
    char domain[MOAT_NAME_LEN];
    uint32_t domain_id;         /* CAP_NO_DOMAIN for control */
    uint32_t rights;            /* rights a handle may ever carry */
    uint64_t generation;        /* starts at 1 */
    union {
        struct moat_blk_geometry blk;   /* kind == BLOCK */
        struct moat_nic_info nic;       /* kind == NIC */
    };
    uint32_t vector;            /* domain's session vector (served caps) */
    uint32_t index;             /* per-domain registration index */
};

struct cap_handle {
    bool used;
    uint32_t gen;               /* slot generation, in the token */
    uint32_t client;
    uint32_t object;
    uint64_t object_gen;
    uint32_t rights;
};

enum cap_refusal {
    CAP_REFUSED_BADCAP, CAP_REFUSED_STALE, CAP_REFUSED_RIGHTS, CAP_REFUSED_LIMIT,
    CAP_REFUSED_NOENT, CAP_REFUSED_DOWN, CAP_REFUSED_REGISTER, CAP_REFUSED_COUNT
};

struct cap_table {
    struct cap_object obj[CAP_OBJECTS_MAX];
    struct cap_handle h[CAP_HANDLES_MAX];
    uint64_t refused[CAP_REFUSED_COUNT];
};

/* Empty table with the "control" object (kind CONTROL, rights READ|ADMIN,
 * always up) as object 0. */
void cap_table_init(struct cap_table *t);

/* A domain registers (or, in a new incarnation, re-registers) a served cap
 * called "<domain>.<suffix>". Returns the object index (>= 0) or:
 *   -MOAT_EINVAL  bad kind, empty/overlong/unprintable suffix, bad geometry
 *   -MOAT_EPERM   the name belongs to another domain, or exists with
 *                 another kind
 *   -MOAT_ELIMIT  CAP_PER_DOMAIN_MAX caps for this domain, or table full
 * Re-registering an existing name of the same domain and kind brings it up
 * with the new geometry and vector; its generation is not changed (it moved
 * when the domain went down). */
int cap_register(struct cap_table *t, uint32_t domain_id, const char *domain,
                 uint32_t kind, const char *suffix, const void *info, uint32_t vector);
/* info is what the domain says about the cap, by kind: a struct
 * moat_blk_geometry (BLOCK) or a struct moat_nic_info (NIC); required. */
/* Geometry rules for BLOCK caps (also used by the client side). */
bool cap_geometry_valid(const struct moat_blk_geometry *g);
/* Rules for a NIC's info: unicast non-zero MAC, MTU in range, max_frame =
 * MTU + 14, known flags, 1..MOAT_SESSION_SLOTS queues, reserved zero. */
bool cap_nic_info_valid(const struct moat_nic_info *n);

/* Every object of domain_id goes down and its generation moves on: every
 * handle to it is stale. Returns how many objects. */
unsigned cap_domain_down(struct cap_table *t, uint32_t domain_id);
/* Revoke one object (generation moves on; it stays up). False if unknown. */
bool cap_revoke(struct cap_table *t, uint32_t object);

/* Index of the object called name, or -MOAT_ENOENT. */
int cap_find(const struct cap_table *t, const char *name);

/* Open name for client with rights. allowed masks what this client may
 * ever hold (e.g. no ADMIN for other users). Returns 0 and the token, or
 * -MOAT_ENOENT, -MOAT_EINVAL (rights 0 or unknown bits), -MOAT_EPERM
 * (rights beyond the object's or the client's), -MOAT_EDOWN (object down),
 * -MOAT_ELIMIT (client has CAP_HANDLES_PER_CLIENT, or table full). */
int cap_open(struct cap_table *t, uint32_t client, const char *name, uint32_t rights,
             uint32_t allowed, uint64_t *handle);
/* Check handle for client needing rights `need`; on success returns 0 and
 * the object index in *object. Errors as in the header comment. */
int cap_check(struct cap_table *t, uint32_t client, uint64_t handle, uint32_t need,
              uint32_t *object);
/* Close one handle (-MOAT_EBADCAP if it is not the client's). A stale
 * handle can still be closed. */
int cap_close(struct cap_table *t, uint32_t client, uint64_t handle);
/* Close every handle of client (its connection ended). Returns how many. */
unsigned cap_drop_client(struct cap_table *t, uint32_t client);
/* Handles client holds now. */
unsigned cap_client_handles(const struct cap_table *t, uint32_t client);

/* Describe object i into d. */
void cap_describe(const struct cap_table *t, uint32_t i, struct moat_cap_desc *d);
/* Describe every object; returns the total count (may exceed max). */
size_t cap_list(const struct cap_table *t, struct moat_cap_desc *out, size_t max);

const char *cap_refusal_name(enum cap_refusal r);

#endif /* MOAT_CAP_TABLE_H */
