/* Capability table: the cap_table.h contract, one behaviour per test. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include "cap_table.h"

#define RW (MOAT_RIGHT_READ | MOAT_RIGHT_WRITE)
#define R MOAT_RIGHT_READ
#define W MOAT_RIGHT_WRITE
#define ALL MOAT_RIGHTS_ALL
#define VEC 48u
#define DOM 3u          /* domain id of "disk0" */
#define DOM2 4u         /* domain id of "net0" */
#define C1 100u         /* clients */
#define C2 101u

static struct cap_table t;

static void setup(void) { cap_table_init(&t); }
TestSuite(cap_table, .init = setup);

static struct moat_blk_geometry geo(void)
{
    return (struct moat_blk_geometry){ .block_size = 4096, .max_blocks = 256,
                                       .blocks = 1u << 20, .flags = MOAT_BLK_F_FLUSH,
                                       .queues = 4 };
}

static struct moat_nic_info nic(void)
{
    return (struct moat_nic_info){ .mac = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 }, .mtu = 1500,
                                   .max_frame = 1514, .flags = MOAT_NIC_F_LINK_STATUS,
                                   .queues = 4 };
}
static const struct moat_nic_info NIC_OK = { .mac = { 0x52, 0x54, 0, 1, 2, 3 }, .mtu = 1500,
                                             .max_frame = 1514, .queues = 2 };

/* "disk0.<suffix>" as a BLOCK cap with g; asserts success. */
static int reg_disk(const char *suffix, struct moat_blk_geometry g)
{
    int i = cap_register(&t, DOM, "disk0", MOAT_CAP_BLOCK, suffix, &g, VEC);
    cr_assert_geq(i, 1, "registering disk0.%s should succeed, got %d", suffix, i);
    return i;
}

static int reg_blk(void) { return reg_disk("blk", geo()); }

/* Open name for client with rights (client may hold anything); asserts success. */
static uint64_t open_ok(uint32_t client, const char *name, uint32_t rights)
{
    uint64_t h = 0;
    int rc = cap_open(&t, client, name, rights, ALL, &h);
    cr_assert_eq(rc, 0, "open %s rights 0x%x by client %u should succeed, got %d", name,
                 rights, client, rc);
    cr_assert_neq(h, 0, "a successful open must return a nonzero token");
    return h;
}

static int check(uint32_t client, uint64_t h, uint32_t need)
{
    uint32_t obj = 0xdead;
    return cap_check(&t, client, h, need, &obj);
}

/* A refused registration of "disk0.<suffix>" with geometry g must be EINVAL. */
static void refuse_geo(struct moat_blk_geometry g, const char *why)
{
    int rc = cap_register(&t, DOM, "disk0", MOAT_CAP_BLOCK, "blk", &g, VEC);
    cr_assert_eq(rc, -MOAT_EINVAL, "geometry with %s must be refused with EINVAL, got %d",
                 why, rc);
    cr_assert_eq(cap_find(&t, "disk0.blk"), -MOAT_ENOENT,
                 "a refused registration (%s) must not create the object", why);
}

/* ---- init, register, list, describe ------------------------------------ */

Test(cap_table, control_object_present_at_init)
{
    cr_assert_eq(cap_find(&t, "control"), 0, "control must be object 0");
    struct cap_object *c = &t.obj[0];
    cr_assert(c->used && c->up, "control must be used and up at init");
    cr_assert_eq(c->kind, MOAT_CAP_CONTROL, "control kind is %u", c->kind);
    cr_assert_eq(c->rights, MOAT_RIGHT_READ | MOAT_RIGHT_ADMIN,
                 "control rights should be READ|ADMIN, are 0x%x", c->rights);
    cr_assert_eq(c->domain_id, CAP_NO_DOMAIN, "control belongs to no domain (id %u)",
                 c->domain_id);
    cr_assert_eq(c->generation, 1, "control generation starts at 1, is %llu",
                 (unsigned long long)c->generation);
    cr_assert_eq(cap_list(&t, NULL, 0), 1, "a fresh table lists only control");
    for (unsigned r = 0; r < CAP_REFUSED_COUNT; r++)
        cr_assert_eq(t.refused[r], 0, "refusal counter %u not zero at init", r);
}

Test(cap_table, register_then_list_and_describe)
{
    struct moat_blk_geometry g = geo();
    int i = reg_disk("blk", g);
    struct moat_nic_info ni = nic();
    int n = cap_register(&t, DOM2, "net0", MOAT_CAP_NIC, "eth", &ni, 50);
    cr_assert_geq(n, 1, "a valid NIC registration should succeed, got %d", n);
    cr_assert_neq(i, n, "two caps got the same object index %d", i);

    struct moat_cap_desc d[4];
    memset(d, 0xAA, sizeof d);
    size_t cnt = cap_list(&t, d, 4);
    cr_assert_eq(cnt, 3, "list should report control + 2 caps, got %zu", cnt);
    cr_assert_str_eq(d[0].name, "control", "first listed should be control, is %s", d[0].name);
    cr_assert_str_eq(d[0].domain, "", "control's domain should be empty, is '%s'", d[0].domain);

    struct moat_cap_desc b;
    memset(&b, 0xAA, sizeof b);
    cap_describe(&t, (uint32_t)i, &b);
    cr_assert_str_eq(b.name, "disk0.blk", "described name is '%s'", b.name);
    cr_assert_str_eq(b.domain, "disk0", "described domain is '%s'", b.domain);
    cr_assert_eq(b.kind, MOAT_CAP_BLOCK, "described kind is %u", b.kind);
    cr_assert_eq(b.state, MOAT_CAP_UP, "a fresh cap should be UP, state %u", b.state);
    cr_assert_geq(b.generation, 1, "generation starts at 1 or more, is %llu",
                  (unsigned long long)b.generation);
    cr_assert(!memcmp(&b.blk, &g, sizeof g), "described geometry differs from registered");
    /* every byte was written: the tail of the strings is zeroed, not left 0xAA */
    cr_assert_eq(b.name[MOAT_NAME_LEN - 1], 0, "name tail not zeroed");
    cr_assert_eq(b.domain[MOAT_NAME_LEN - 1], 0, "domain tail not zeroed");

    struct moat_cap_desc nd;
    memset(&nd, 0xAA, sizeof nd);
    cap_describe(&t, (uint32_t)n, &nd);
    cr_assert_str_eq(nd.name, "net0.eth", "NIC name is '%s'", nd.name);
    cr_assert_eq(nd.kind, MOAT_CAP_NIC, "NIC kind is %u", nd.kind);
    cr_assert(!memcmp(&nd.nic, &ni, sizeof ni), "NIC desc must carry the registered MAC, MTU and queues");
    cr_assert(!memcmp(&d[2], &nd, sizeof nd), "list entry and describe disagree for the NIC");
}

Test(cap_table, list_returns_total_beyond_max)
{
    reg_disk("a", geo());
    reg_disk("b", geo());
    struct moat_cap_desc d[2];
    size_t cnt = cap_list(&t, d, 1);
    cr_assert_eq(cnt, 3, "list must return the total (3) even with max 1, got %zu", cnt);
    cr_assert_str_eq(d[0].name, "control", "the one entry written should be control");
}

Test(cap_table, object_rights_follow_kind_and_readonly)
{
    int b = reg_blk();
    struct moat_blk_geometry g = geo();
    g.flags |= MOAT_BLK_F_READONLY;
    int ro = reg_disk("ro", g);
    struct moat_nic_info ni = nic();
    int n = cap_register(&t, DOM, "disk0", MOAT_CAP_NIC, "eth", &ni, VEC);
    cr_assert_geq(n, 1, "NIC register failed: %d", n);
    cr_assert_eq(t.obj[b].rights, RW, "BLOCK rights should be READ|WRITE, are 0x%x",
                 t.obj[b].rights);
    cr_assert_eq(t.obj[ro].rights, R, "read-only BLOCK rights should be READ, are 0x%x",
                 t.obj[ro].rights);
    cr_assert_eq(t.obj[n].rights, RW, "NIC rights should be READ|WRITE, are 0x%x",
                 t.obj[n].rights);
    uint64_t h;
    int rc = cap_open(&t, C1, "disk0.ro", RW, ALL, &h);
    cr_assert_eq(rc, -MOAT_EPERM, "WRITE on a read-only block must be EPERM, got %d", rc);
}

/* ---- registration refusals --------------------------------------------- */

Test(cap_table, register_refuses_bad_kind)
{
    struct moat_blk_geometry g = geo();
    const uint32_t kinds[] = { 0, MOAT_CAP_CONTROL, 4, 0xFFFFFFFFu };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        int rc = cap_register(&t, DOM, "disk0", kinds[k], "blk", &g, VEC);
        cr_assert_eq(rc, -MOAT_EINVAL, "kind %u must be refused with EINVAL, got %d",
                     kinds[k], rc);
    }
    cr_assert_eq(cap_list(&t, NULL, 0), 1, "refused registrations created objects");
}

Test(cap_table, register_refuses_bad_nic_info)
{
    struct moat_nic_info bad[9];
    for (unsigned i = 0; i < 9; i++)
        bad[i] = nic();
    bad[0].mac[0] = 0x01;                       /* multicast */
    memset(bad[1].mac, 0, 6);                   /* all zero */
    memset(bad[2].mac, 0xFF, 6);                /* broadcast */
    bad[3].mtu = MOAT_NIC_MTU_MIN - 1;
    bad[4].mtu = MOAT_NIC_MTU_MAX + 1;
    bad[5].max_frame = 1518;                    /* not mtu + 14 */
    bad[6].flags = 0x80;
    bad[7].queues = 0;
    bad[8].queues = MOAT_SESSION_SLOTS + 1;
    for (unsigned i = 0; i < 9; i++) {
        int rc = cap_register(&t, DOM2, "net0", MOAT_CAP_NIC, "eth", &bad[i], VEC);
        cr_assert_eq(rc, -MOAT_EINVAL, "NIC info case %u must be refused with EINVAL, got %d", i, rc);
    }
    int rc = cap_register(&t, DOM2, "net0", MOAT_CAP_NIC, "eth", NULL, VEC);
    cr_assert_eq(rc, -MOAT_EINVAL, "a NIC without info must be refused, got %d", rc);
    cr_assert_eq(cap_list(&t, NULL, 0), 1, "refused NIC registrations created objects");
    struct moat_nic_info ok = nic();
    cr_assert_geq(cap_register(&t, DOM2, "net0", MOAT_CAP_NIC, "eth", &ok, VEC), 1,
                  "the valid NIC info after the refusals must register");
}

Test(cap_table, register_refuses_bad_suffix)
{
    struct moat_blk_geometry g = geo();
    const char *bad[] = { "", "Blk", "b.k", "b k", "b/k", "blk\n", "\xc3\xa9", "b:k" };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        int rc = cap_register(&t, DOM, "disk0", MOAT_CAP_BLOCK, bad[k], &g, VEC);
        cr_assert_eq(rc, -MOAT_EINVAL, "suffix #%zu '%s' must be EINVAL, got %d", k, bad[k], rc);
    }
    int rc = cap_register(&t, DOM, "disk0", MOAT_CAP_BLOCK, NULL, &g, VEC);
    cr_assert_eq(rc, -MOAT_EINVAL, "NULL suffix must be EINVAL, got %d", rc);
    int ok = cap_register(&t, DOM, "disk0", MOAT_CAP_BLOCK, "a-z_09", &g, VEC);
    cr_assert_geq(ok, 1, "suffix of [a-z0-9_-] must be accepted, got %d", ok);
}

Test(cap_table, register_refuses_overlong_suffix_and_name)
{
    struct moat_blk_geometry g = geo();
    char s[MOAT_CAP_NAME_MAX + 1];
    memset(s, 'x', MOAT_CAP_NAME_MAX);
    s[MOAT_CAP_NAME_MAX] = '\0';            /* 24 chars: one too many */
    int rc = cap_register(&t, DOM, "disk0", MOAT_CAP_BLOCK, s, &g, VEC);
    cr_assert_eq(rc, -MOAT_EINVAL, "a %u-char suffix must be EINVAL, got %d",
                 MOAT_CAP_NAME_MAX, rc);
    s[MOAT_CAP_NAME_MAX - 1] = '\0';        /* 23 chars: the maximum */
    rc = cap_register(&t, DOM, "disk0", MOAT_CAP_BLOCK, s, &g, VEC);
    cr_assert_geq(rc, 1, "a %u-char suffix must be accepted, got %d", MOAT_CAP_NAME_MAX - 1, rc);

    /* domain 24 + '.' + suffix 23 = 48 chars: does not fit MOAT_NAME_LEN - 1 */
    char dom[25];
    memset(dom, 'd', 24);
    dom[24] = '\0';
    rc = cap_register(&t, 9, dom, MOAT_CAP_BLOCK, s, &g, VEC);
    cr_assert_eq(rc, -MOAT_EINVAL, "a 48-char full name must be EINVAL, got %d", rc);
    s[MOAT_CAP_NAME_MAX - 2] = '\0';        /* 24 + 1 + 22 = 47: fits exactly */
    rc = cap_register(&t, 9, dom, MOAT_CAP_BLOCK, s, &g, VEC);
    cr_assert_geq(rc, 1, "a 47-char full name must be accepted, got %d", rc);
    cr_assert_eq(strlen(t.obj[rc].name), MOAT_NAME_LEN - 1, "stored name length %zu",
                 strlen(t.obj[rc].name));
}

Test(cap_table, register_refuses_block_size_not_power_of_two_or_out_of_range)
{
    const uint32_t sizes[] = { 0, 1, 256, 1000, 4095, 4097, 131072, 0x80000000u };
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        struct moat_blk_geometry g = geo();
        g.block_size = sizes[k];
        char why[64];
        snprintf(why, sizeof why, "block size %u", sizes[k]);
        refuse_geo(g, why);
    }
    struct moat_blk_geometry g = geo();
    g.block_size = MOAT_BLK_BLOCK_MIN;
    cr_assert(cap_geometry_valid(&g), "block size 512 must be valid");
    g.block_size = MOAT_BLK_BLOCK_MAX;
    cr_assert(cap_geometry_valid(&g), "block size 65536 must be valid");
}

Test(cap_table, register_refuses_zero_blocks)
{
    struct moat_blk_geometry g = geo();
    g.blocks = 0;
    refuse_geo(g, "0 blocks");
}

Test(cap_table, register_refuses_overflowing_capacity)
{
    struct moat_blk_geometry g = geo();
    g.blocks = UINT64_MAX / g.block_size + 1;
    refuse_geo(g, "blocks * block_size overflowing uint64");
    g.blocks = UINT64_MAX;
    refuse_geo(g, "UINT64_MAX blocks");
    g.blocks = UINT64_MAX / g.block_size;
    cr_assert(cap_geometry_valid(&g), "largest non-overflowing capacity must be valid");
}

Test(cap_table, register_refuses_bad_flags)
{
    struct moat_blk_geometry g = geo();
    g.flags = MOAT_BLK_F_ALL + 1;
    refuse_geo(g, "flag 0x10");
    g.flags = 0x80000000u | MOAT_BLK_F_FLUSH;
    refuse_geo(g, "flag 0x80000000");
    g.flags = MOAT_BLK_F_ALL;
    cr_assert(cap_geometry_valid(&g), "all known flags must be valid");
}

Test(cap_table, register_refuses_bad_queues_max_blocks_and_null_geometry)
{
    struct moat_blk_geometry g = geo();
    g.queues = 0;
    refuse_geo(g, "0 queues");
    g.queues = MOAT_SESSION_SLOTS + 1;
    refuse_geo(g, "17 queues");
    g.queues = MOAT_SESSION_SLOTS;
    cr_assert(cap_geometry_valid(&g), "16 queues must be valid");
    g = geo();
    g.max_blocks = 0;
    refuse_geo(g, "max_blocks 0");
    cr_assert(!cap_geometry_valid(NULL), "NULL geometry is not valid");
    int rc = cap_register(&t, DOM, "disk0", MOAT_CAP_BLOCK, "blk", NULL, VEC);
    cr_assert_eq(rc, -MOAT_EINVAL, "BLOCK with NULL geometry must be EINVAL, got %d", rc);
}

Test(cap_table, register_refuses_bad_vector)
{
    struct moat_blk_geometry g = geo();
    const uint32_t bad[] = { 0, 14, 31, 255, 256, 0xFFFFFFFFu };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        int rc = cap_register(&t, DOM, "disk0", MOAT_CAP_BLOCK, "blk", &g, bad[k]);
        cr_assert_eq(rc, -MOAT_EINVAL, "vector %u must be EINVAL, got %d", bad[k], rc);
    }
    int rc = cap_register(&t, DOM, "disk0", MOAT_CAP_BLOCK, "lo", &g, 32);
    cr_assert_geq(rc, 1, "vector 32 must be accepted, got %d", rc);
    rc = cap_register(&t, DOM, "disk0", MOAT_CAP_BLOCK, "hi", &g, 254);
    cr_assert_geq(rc, 1, "vector 254 must be accepted, got %d", rc);
    cr_assert_eq(t.obj[rc].vector, 254, "vector stored as %u", t.obj[rc].vector);
}

Test(cap_table, register_per_domain_limit)
{
    char s[8];
    for (unsigned k = 0; k < CAP_PER_DOMAIN_MAX; k++) {
        snprintf(s, sizeof s, "c%u", k);
        int i = reg_disk(s, geo());
        cr_assert_eq(t.obj[i].index, k, "cap #%u should get per-domain index %u, got %u", k, k,
                     t.obj[i].index);
    }
    struct moat_blk_geometry g = geo();
    int rc = cap_register(&t, DOM, "disk0", MOAT_CAP_BLOCK, "more", &g, VEC);
    cr_assert_eq(rc, -MOAT_ELIMIT, "cap #%u of a domain must be ELIMIT, got %d",
                 CAP_PER_DOMAIN_MAX + 1, rc);
    /* re-registering an existing one is not a new cap */
    rc = cap_register(&t, DOM, "disk0", MOAT_CAP_BLOCK, "c0", &g, VEC);
    cr_assert_geq(rc, 1, "re-registering an existing cap at the limit must work, got %d", rc);
    /* another domain is not limited by this one */
    rc = cap_register(&t, DOM2, "net0", MOAT_CAP_NIC, "eth", &NIC_OK, VEC);
    cr_assert_geq(rc, 1, "another domain must still register, got %d", rc);
}

Test(cap_table, register_object_table_full)
{
    struct moat_blk_geometry g = geo();
    char dom[16], s[8];
    unsigned made = 0;
    int rc = 0;
    for (uint32_t d = 0; rc >= 0; d++) {
        snprintf(dom, sizeof dom, "d%u", d);
        for (unsigned k = 0; k < CAP_PER_DOMAIN_MAX && rc >= 0; k++) {
            snprintf(s, sizeof s, "c%u", k);
            rc = cap_register(&t, d, dom, MOAT_CAP_BLOCK, s, &g, VEC);
            if (rc >= 0)
                made++;
        }
    }
    cr_assert_eq(rc, -MOAT_ELIMIT, "a full object table must be ELIMIT, got %d", rc);
    cr_assert_eq(made, CAP_OBJECTS_MAX - 1, "expected %u caps besides control, made %u",
                 CAP_OBJECTS_MAX - 1, made);
}

Test(cap_table, register_refuses_another_domains_name)
{
    reg_blk();
    struct moat_blk_geometry g = geo();
    int rc = cap_register(&t, DOM2, "disk0", MOAT_CAP_BLOCK, "blk", &g, VEC);
    cr_assert_eq(rc, -MOAT_EPERM, "domain %u taking disk0.blk of domain %u must be EPERM, got %d",
                 DOM2, DOM, rc);
    rc = cap_register(&t, DOM2, "disk0", MOAT_CAP_BLOCK, "other", &g, VEC);
    cr_assert_eq(rc, -MOAT_EPERM, "domain %u squatting disk0's namespace must be EPERM, got %d",
                 DOM2, rc);
    cr_assert_eq(t.obj[cap_find(&t, "disk0.blk")].domain_id, DOM,
                 "the refused registration changed the owner");
}

Test(cap_table, register_refuses_same_name_other_kind)
{
    int i = reg_blk();
    int rc = cap_register(&t, DOM, "disk0", MOAT_CAP_NIC, "blk", &NIC_OK, VEC);
    cr_assert_eq(rc, -MOAT_EPERM, "disk0.blk again as a NIC must be EPERM, got %d", rc);
    cr_assert_eq(t.obj[i].kind, MOAT_CAP_BLOCK, "the object's kind changed to %u", t.obj[i].kind);
}

/* ---- open ---------------------------------------------------------------- */

Test(cap_table, open_with_rights_subset)
{
    int i = reg_blk();
    uint64_t hr = open_ok(C1, "disk0.blk", R);
    uint64_t hrw = open_ok(C1, "disk0.blk", RW);
    cr_assert_neq(hr, hrw, "two opens returned the same token");
    uint32_t obj = 0xdead;
    int rc = cap_check(&t, C1, hr, R, &obj);
    cr_assert_eq(rc, 0, "READ handle checked for READ should pass, got %d", rc);
    cr_assert_eq(obj, (uint32_t)i, "check should return object %d, returned %u", i, obj);
    cr_assert_eq(check(C1, hrw, RW), 0, "READ|WRITE handle checked for READ|WRITE should pass");
    cr_assert_eq(check(C1, hrw, 0), 0, "a live handle checked for no rights should pass");
    cr_assert_eq(cap_client_handles(&t, C1), 2, "client should hold 2 handles, holds %u",
                 cap_client_handles(&t, C1));
}

Test(cap_table, open_with_too_many_rights_is_eperm)
{
    reg_blk();
    uint64_t h = 1;
    int rc = cap_open(&t, C1, "disk0.blk", R | MOAT_RIGHT_ADMIN, ALL, &h);
    cr_assert_eq(rc, -MOAT_EPERM, "ADMIN on a block cap must be EPERM, got %d", rc);
    cr_assert_eq(h, 0, "a refused open must leave the token 0");
    rc = cap_open(&t, C1, "disk0.blk", RW, R, &h);
    cr_assert_eq(rc, -MOAT_EPERM, "WRITE beyond what the client is allowed must be EPERM, got %d",
                 rc);
    rc = cap_open(&t, C1, "control", MOAT_RIGHT_ADMIN, R, &h);
    cr_assert_eq(rc, -MOAT_EPERM, "ADMIN on control for a non-admin client must be EPERM, got %d",
                 rc);
    rc = cap_open(&t, C1, "control", W, ALL, &h);
    cr_assert_eq(rc, -MOAT_EPERM, "WRITE on control must be EPERM, got %d", rc);
    open_ok(C1, "control", R | MOAT_RIGHT_ADMIN);
    cr_assert_eq(cap_client_handles(&t, C1), 1, "refused opens must not hold slots");
}

Test(cap_table, open_with_zero_or_unknown_rights_is_einval)
{
    reg_blk();
    uint64_t h;
    int rc = cap_open(&t, C1, "disk0.blk", 0, ALL, &h);
    cr_assert_eq(rc, -MOAT_EINVAL, "rights 0 must be EINVAL, got %d", rc);
    rc = cap_open(&t, C1, "disk0.blk", R | 0x8u, ALL, &h);
    cr_assert_eq(rc, -MOAT_EINVAL, "rights bit 0x8 must be EINVAL, got %d", rc);
    rc = cap_open(&t, C1, "disk0.blk", 0x80000000u, 0xFFFFFFFFu, &h);
    cr_assert_eq(rc, -MOAT_EINVAL, "rights bit 31 must be EINVAL even if allowed, got %d", rc);
}

Test(cap_table, open_unknown_name_is_enoent)
{
    reg_blk();
    uint64_t h;
    const char *names[] = { "disk0.nope", "disk0", "disk0.blk.", "DISK0.BLK", "", "disk0.bl" };
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        int rc = cap_open(&t, C1, names[k], R, ALL, &h);
        cr_assert_eq(rc, -MOAT_ENOENT, "open of '%s' must be ENOENT, got %d", names[k], rc);
    }
    cr_assert_eq(cap_find(&t, "disk0.nope"), -MOAT_ENOENT, "find of an unknown name");
}

/* ---- check: rights, stale, bad ------------------------------------------ */

Test(cap_table, check_with_missing_right_is_eperm)
{
    reg_blk();
    uint64_t h = open_ok(C1, "disk0.blk", R);
    int rc = check(C1, h, W);
    cr_assert_eq(rc, -MOAT_EPERM, "WRITE through a READ handle must be EPERM, got %d", rc);
    rc = check(C1, h, RW);
    cr_assert_eq(rc, -MOAT_EPERM, "READ|WRITE through a READ handle must be EPERM, got %d", rc);
    rc = check(C1, h, MOAT_RIGHT_ADMIN);
    cr_assert_eq(rc, -MOAT_EPERM, "ADMIN through a READ handle must be EPERM, got %d", rc);
    cr_assert_eq(check(C1, h, R), 0, "the handle must still work for READ");
}

Test(cap_table, revoke_makes_handles_stale_and_fresh_open_works)
{
    int i = reg_blk();
    uint64_t old = open_ok(C1, "disk0.blk", RW);
    uint64_t gen = t.obj[i].generation;
    cr_assert(cap_revoke(&t, (uint32_t)i), "revoking a registered object must succeed");
    cr_assert_gt(t.obj[i].generation, gen, "revoke must move the generation");
    cr_assert(t.obj[i].up, "revoke leaves the object up");
    int rc = check(C1, old, R);
    cr_assert_eq(rc, -MOAT_ESTALE, "a handle from before revoke must be ESTALE, got %d", rc);
    rc = check(C1, old, 0);
    cr_assert_eq(rc, -MOAT_ESTALE, "stale beats any rights need, got %d", rc);
    uint64_t fresh = open_ok(C1, "disk0.blk", RW);
    cr_assert_eq(check(C1, fresh, RW), 0, "a handle opened after revoke must work");
    cr_assert_eq(check(C1, old, R), -MOAT_ESTALE, "the old handle stays stale");
    cr_assert(!cap_revoke(&t, CAP_OBJECTS_MAX), "revoke of an out-of-range object must fail");
    cr_assert(!cap_revoke(&t, 40), "revoke of an unused object must fail");
}

Test(cap_table, stale_is_reported_before_rights)
{
    int i = reg_blk();
    uint64_t h = open_ok(C1, "disk0.blk", R);
    cap_revoke(&t, (uint32_t)i);
    int rc = check(C1, h, W);
    cr_assert_eq(rc, -MOAT_ESTALE, "stale + missing right must report ESTALE first, got %d", rc);
}

Test(cap_table, domain_down_and_reregister)
{
    struct moat_blk_geometry g = geo();
    int i = reg_disk("blk", g);
    uint64_t gen0 = t.obj[i].generation;
    uint64_t old = open_ok(C1, "disk0.blk", RW);

    unsigned n = cap_domain_down(&t, DOM);
    cr_assert_eq(n, 1, "domain down should report 1 object, got %u", n);
    cr_assert_eq(check(C1, old, R), -MOAT_ESTALE, "handles must be stale once the domain is down");
    struct moat_cap_desc d;
    cap_describe(&t, (uint32_t)i, &d);
    cr_assert_eq(d.state, MOAT_CAP_DOWN, "a down domain's cap must describe as DOWN, got %u",
                 d.state);
    uint64_t h = 7;
    int rc = cap_open(&t, C1, "disk0.blk", R, ALL, &h);
    cr_assert_eq(rc, -MOAT_EDOWN, "open while the domain is down must be EDOWN, got %d", rc);
    cr_assert_eq(h, 0, "a refused open must leave the token 0");

    g.blocks = 2048;
    g.flags = MOAT_BLK_F_FLUSH | MOAT_BLK_F_DISCARD;
    int j = cap_register(&t, DOM, "disk0", MOAT_CAP_BLOCK, "blk", &g, 60);
    cr_assert_eq(j, i, "re-register must bring back the same object %d, got %d", i, j);
    cr_assert_eq(cap_find(&t, "disk0.blk"), i, "the name must still find the object");
    cr_assert_eq(cap_list(&t, NULL, 0), 2, "re-register must not add an object");
    cap_describe(&t, (uint32_t)i, &d);
    cr_assert_eq(d.state, MOAT_CAP_UP, "re-registered cap must be UP, got %u", d.state);
    cr_assert_eq(d.blk.blocks, 2048, "re-register must take the new geometry (blocks %llu)",
                 (unsigned long long)d.blk.blocks);
    cr_assert_eq(t.obj[i].vector, 60, "re-register must take the new vector (%u)",
                 t.obj[i].vector);
    cr_assert_gt(d.generation, gen0, "generation must strictly increase across down (%llu -> %llu)",
                 (unsigned long long)gen0, (unsigned long long)d.generation);
    cr_assert_eq(check(C1, old, R), -MOAT_ESTALE, "old handles stay stale after re-register");
    uint64_t fresh = open_ok(C1, "disk0.blk", RW);
    cr_assert_eq(check(C1, fresh, RW), 0, "a handle opened after re-register must work");
}

Test(cap_table, domain_down_touches_only_that_domain)
{
    int a = reg_blk();
    int b = cap_register(&t, DOM2, "net0", MOAT_CAP_NIC, "eth", &NIC_OK, VEC);
    cr_assert_geq(b, 1, "NIC register failed: %d", b);
    uint64_t ha = open_ok(C1, "disk0.blk", R);
    uint64_t hb = open_ok(C1, "net0.eth", R);
    uint64_t hc = open_ok(C1, "control", R);
    uint64_t gb = t.obj[b].generation;
    cr_assert_eq(cap_domain_down(&t, DOM), 1, "exactly one object of domain %u", DOM);
    cr_assert_eq(check(C1, ha, R), -MOAT_ESTALE, "the downed domain's handle must be stale");
    cr_assert_eq(check(C1, hb, R), 0, "another domain's handle must keep working");
    cr_assert_eq(check(C1, hc, R), 0, "the control handle must keep working");
    cr_assert_eq(t.obj[b].generation, gb, "another domain's generation moved");
    cr_assert(t.obj[b].up && !t.obj[a].up, "only domain %u should be down", DOM);
    cr_assert_eq(cap_domain_down(&t, 77), 0, "a domain with no caps downs 0 objects");
    cr_assert_eq(cap_domain_down(&t, CAP_NO_DOMAIN), 0, "control never goes down");
    cr_assert(t.obj[0].up, "control must stay up");
}

Test(cap_table, reregistration_index_follows_new_incarnation_order)
{
    int a = reg_disk("a", geo());
    int b = reg_disk("b", geo());
    cr_assert_eq(t.obj[a].index, 0, "first cap index 0, got %u", t.obj[a].index);
    cr_assert_eq(t.obj[b].index, 1, "second cap index 1, got %u", t.obj[b].index);
    cap_domain_down(&t, DOM);
    reg_disk("b", geo());
    reg_disk("a", geo());
    cr_assert_eq(t.obj[b].index, 0, "b registered first in the new incarnation: index 0, got %u",
                 t.obj[b].index);
    cr_assert_eq(t.obj[a].index, 1, "a registered second: index 1, got %u", t.obj[a].index);
}

Test(cap_table, reregister_readonly_while_up_withdraws_write)
{
    reg_blk();
    uint64_t h = open_ok(C1, "disk0.blk", RW);
    struct moat_blk_geometry g = geo();
    g.flags |= MOAT_BLK_F_READONLY;
    reg_disk("blk", g);
    int rc = check(C1, h, W);
    cr_assert_neq(rc, 0, "WRITE must not pass once the cap is read-only (got %d)", rc);
    uint64_t x;
    rc = cap_open(&t, C1, "disk0.blk", RW, ALL, &x);
    cr_assert_eq(rc, -MOAT_EPERM, "a new WRITE open of a read-only cap must be EPERM, got %d", rc);
}

/* ---- bad handles ----------------------------------------------------------- */

Test(cap_table, another_clients_handle_is_badcap)
{
    reg_blk();
    uint64_t h = open_ok(C1, "disk0.blk", RW);
    int rc = check(C2, h, R);
    cr_assert_eq(rc, -MOAT_EBADCAP, "client %u using client %u's handle must be EBADCAP, got %d",
                 C2, C1, rc);
    rc = cap_close(&t, C2, h);
    cr_assert_eq(rc, -MOAT_EBADCAP, "client %u closing client %u's handle must be EBADCAP, got %d",
                 C2, C1, rc);
    cr_assert_eq(check(C1, h, RW), 0, "the owner's handle must survive the attempt");
}

Test(cap_table, closed_handle_is_badcap)
{
    reg_blk();
    uint64_t h = open_ok(C1, "disk0.blk", RW);
    cr_assert_eq(cap_close(&t, C1, h), 0, "closing an own handle must succeed");
    int rc = check(C1, h, R);
    cr_assert_eq(rc, -MOAT_EBADCAP, "a closed handle must be EBADCAP, got %d", rc);
    rc = cap_close(&t, C1, h);
    cr_assert_eq(rc, -MOAT_EBADCAP, "closing twice must be EBADCAP, got %d", rc);
    cr_assert_eq(cap_client_handles(&t, C1), 0, "the client should hold nothing");
}

Test(cap_table, reused_slot_does_not_revive_old_token)
{
    reg_blk();
    uint64_t old = open_ok(C1, "disk0.blk", RW);
    cap_close(&t, C1, old);
    uint64_t now = open_ok(C1, "disk0.blk", RW);
    cr_assert_eq((uint32_t)now, (uint32_t)old,
                 "test premise: the freed slot is reused (slot %u vs %u)",
                 (uint32_t)now, (uint32_t)old);
    cr_assert_neq(now, old, "a reused slot must give a new token");
    int rc = check(C1, old, R);
    cr_assert_eq(rc, -MOAT_EBADCAP, "the old token of a reused slot must be EBADCAP, got %d", rc);
    cr_assert_eq(check(C1, now, RW), 0, "the new token must work");
    /* also across a client drop */
    cap_drop_client(&t, C1);
    uint64_t again = open_ok(C1, "disk0.blk", RW);
    cr_assert_eq(check(C1, now, R), -MOAT_EBADCAP, "a dropped token must not revive on reuse");
    cr_assert_eq(check(C1, again, R), 0, "the newest token must work");
}

Test(cap_table, slot_generation_skips_zero_on_wrap)
{
    reg_blk();
    t.h[0].gen = 0xFFFFFFFFu;
    uint64_t h = open_ok(C1, "disk0.blk", R);
    cr_assert_eq(h >> 32, 0xFFFFFFFFu, "premise: slot 0 hands out generation 0xffffffff");
    cap_close(&t, C1, h);
    cr_assert_eq(t.h[0].gen, 1, "slot generation must wrap to 1, not 0 (is %u)", t.h[0].gen);
    uint64_t n = open_ok(C1, "disk0.blk", R);
    cr_assert_eq(check(C1, h, R), -MOAT_EBADCAP, "the pre-wrap token must be dead");
    cr_assert_eq(check(C1, n, R), 0, "the post-wrap token must work");
}

Test(cap_table, forged_tokens_are_badcap)
{
    reg_blk();
    uint64_t h = open_ok(C1, "disk0.blk", RW);
    uint32_t slot = (uint32_t)h, gen = (uint32_t)(h >> 32);
    const uint64_t forged[] = {
        0,
        1,                                          /* slot 0, generation 0 */
        (uint64_t)gen << 32,                        /* index field 0 */
        ((uint64_t)gen << 32) | (CAP_HANDLES_MAX + 1u),  /* index out of range */
        ((uint64_t)gen << 32) | 0xFFFFFFFFu,
        ((uint64_t)(gen + 1u) << 32) | slot,        /* wrong slot generation */
        ((uint64_t)gen << 32) | (slot + 1u),        /* neighbour slot, unused */
        h ^ 0x8000000000000000ull,
        0xFFFFFFFFFFFFFFFFull,
        0x0123456789abcdefull,
        0xdeadbeefcafef00dull,
    };
    for (size_t k = 0; k < sizeof forged / sizeof forged[0]; k++) {
        int rc = check(C1, forged[k], 0);
        cr_assert_eq(rc, -MOAT_EBADCAP, "forged token #%zu 0x%llx must be EBADCAP, got %d", k,
                     (unsigned long long)forged[k], rc);
        rc = cap_close(&t, C1, forged[k]);
        cr_assert_eq(rc, -MOAT_EBADCAP, "closing forged token #%zu must be EBADCAP, got %d", k, rc);
    }
    cr_assert_eq(check(C1, h, RW), 0, "the real handle must be unaffected by the forgeries");
    cr_assert_eq(t.refused[CAP_REFUSED_BADCAP], 2 * (sizeof forged / sizeof forged[0]),
                 "every forgery should be counted as bad handle, counted %llu",
                 (unsigned long long)t.refused[CAP_REFUSED_BADCAP]);
}

Test(cap_table, badcap_is_reported_before_stale_and_rights)
{
    int i = reg_blk();
    uint64_t h = open_ok(C1, "disk0.blk", R);
    cap_revoke(&t, (uint32_t)i);
    int rc = check(C2, h, W);
    cr_assert_eq(rc, -MOAT_EBADCAP, "another client's stale handle is EBADCAP first, got %d", rc);
}

Test(cap_table, stale_handle_can_still_be_closed)
{
    reg_blk();
    uint64_t h = open_ok(C1, "disk0.blk", R);
    cap_domain_down(&t, DOM);
    cr_assert_eq(cap_close(&t, C1, h), 0, "closing a stale handle must succeed");
    cr_assert_eq(cap_client_handles(&t, C1), 0, "the stale handle's slot must be freed");
}

/* ---- limits and client drop --------------------------------------------- */

Test(cap_table, per_client_limit_and_other_clients_unaffected)
{
    reg_blk();
    uint64_t first = 0;
    for (unsigned k = 0; k < CAP_HANDLES_PER_CLIENT; k++) {
        uint64_t h = open_ok(C1, "disk0.blk", R);
        if (!k)
            first = h;
    }
    cr_assert_eq(cap_client_handles(&t, C1), CAP_HANDLES_PER_CLIENT, "client should hold %u",
                 CAP_HANDLES_PER_CLIENT);
    uint64_t h = 5;
    int rc = cap_open(&t, C1, "disk0.blk", R, ALL, &h);
    cr_assert_eq(rc, -MOAT_ELIMIT, "handle #%u of one client must be ELIMIT, got %d",
                 CAP_HANDLES_PER_CLIENT + 1, rc);
    cr_assert_eq(h, 0, "a refused open must leave the token 0");
    uint64_t other = open_ok(C2, "disk0.blk", RW);
    cr_assert_eq(check(C2, other, RW), 0, "another client must be unaffected by C1's limit");
    cr_assert_eq(cap_close(&t, C1, first), 0, "close one");
    open_ok(C1, "disk0.blk", R);    /* room again */
}

Test(cap_table, handle_table_full_is_elimit)
{
    reg_blk();
    const unsigned clients = CAP_HANDLES_MAX / CAP_HANDLES_PER_CLIENT;
    for (uint32_t c = 0; c < clients; c++)
        for (unsigned k = 0; k < CAP_HANDLES_PER_CLIENT; k++)
            open_ok(c, "disk0.blk", R);
    uint64_t h;
    int rc = cap_open(&t, clients, "disk0.blk", R, ALL, &h);
    cr_assert_eq(rc, -MOAT_ELIMIT, "a full handle table must be ELIMIT, got %d", rc);
}

Test(cap_table, drop_client_frees_its_handles_only)
{
    reg_blk();
    uint64_t a[3];
    for (int k = 0; k < 3; k++)
        a[k] = open_ok(C1, "disk0.blk", R);
    uint64_t b = open_ok(C2, "disk0.blk", R);
    unsigned n = cap_drop_client(&t, C1);
    cr_assert_eq(n, 3, "drop should close 3 handles, closed %u", n);
    cr_assert_eq(cap_client_handles(&t, C1), 0, "dropped client still holds %u",
                 cap_client_handles(&t, C1));
    for (int k = 0; k < 3; k++)
        cr_assert_eq(check(C1, a[k], R), -MOAT_EBADCAP, "dropped handle %d must be EBADCAP", k);
    cr_assert_eq(check(C2, b, R), 0, "the other client's handle must survive the drop");
    cr_assert_eq(cap_drop_client(&t, C1), 0, "dropping again frees nothing");
    for (unsigned k = 0; k < CAP_HANDLES_PER_CLIENT; k++)
        open_ok(C1, "disk0.blk", R);  /* the full quota is back */
}

/* ---- refusal accounting ---------------------------------------------------- */

static void expect_count(enum cap_refusal r, uint64_t want, const char *after)
{
    cr_assert_eq(t.refused[r], want, "refused[%s] should be %llu after %s, is %llu",
                 cap_refusal_name(r), (unsigned long long)want, after,
                 (unsigned long long)t.refused[r]);
}

Test(cap_table, refusal_counters_count_each_kind)
{
    int i = reg_blk();
    uint64_t h = open_ok(C1, "disk0.blk", R), x;

    check(C2, h, R);
    expect_count(CAP_REFUSED_BADCAP, 1, "another client's handle");
    cap_close(&t, C1, 0);
    expect_count(CAP_REFUSED_BADCAP, 2, "closing token 0");

    check(C1, h, W);
    expect_count(CAP_REFUSED_RIGHTS, 1, "a missing right in check");
    cap_open(&t, C1, "disk0.blk", MOAT_RIGHT_ADMIN, ALL, &x);
    expect_count(CAP_REFUSED_RIGHTS, 2, "an open with too many rights");

    cap_open(&t, C1, "nope.nope", R, ALL, &x);
    expect_count(CAP_REFUSED_NOENT, 1, "an open of an unknown name");

    cap_revoke(&t, (uint32_t)i);
    check(C1, h, R);
    expect_count(CAP_REFUSED_STALE, 1, "a stale handle");

    cap_domain_down(&t, DOM);
    cap_open(&t, C1, "disk0.blk", R, ALL, &x);
    expect_count(CAP_REFUSED_DOWN, 1, "an open while down");

    cap_register(&t, DOM, "disk0", 0, "blk", NULL, VEC);
    expect_count(CAP_REFUSED_REGISTER, 1, "a register with a bad kind");
    cap_register(&t, DOM2, "disk0", MOAT_CAP_NIC, "x", &NIC_OK, VEC);
    expect_count(CAP_REFUSED_REGISTER, 2, "a register of another domain's name");

    for (unsigned k = 1; k < CAP_HANDLES_PER_CLIENT; k++)
        open_ok(C1, "control", R);
    cap_open(&t, C1, "control", R, ALL, &x);
    expect_count(CAP_REFUSED_LIMIT, 1, "an open over the per-client limit");

    /* successes count nothing */
    expect_count(CAP_REFUSED_BADCAP, 2, "the whole sequence");
    expect_count(CAP_REFUSED_STALE, 1, "the whole sequence");
}

Test(cap_table, refusal_names)
{
    const char *want[CAP_REFUSED_COUNT] = {
        [CAP_REFUSED_BADCAP] = "bad handle", [CAP_REFUSED_STALE] = "stale",
        [CAP_REFUSED_RIGHTS] = "rights", [CAP_REFUSED_LIMIT] = "limit",
        [CAP_REFUSED_NOENT] = "no such cap", [CAP_REFUSED_DOWN] = "down",
        [CAP_REFUSED_REGISTER] = "register",
    };
    for (unsigned r = 0; r < CAP_REFUSED_COUNT; r++)
        cr_assert_str_eq(cap_refusal_name((enum cap_refusal)r), want[r],
                         "refusal %u should be named '%s', is '%s'", r, want[r],
                         cap_refusal_name((enum cap_refusal)r));
    cr_assert_str_eq(cap_refusal_name(CAP_REFUSED_COUNT), "unknown",
                     "an out-of-range refusal should be 'unknown'");
}
