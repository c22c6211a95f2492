/* NVMe controller model, registers and admin queue: CAP/VS/CC/CSTS/AQA,
 * enable/disable/shutdown/reset, register access widths, the admin queue's
 * phase tags, wrap and CQ-full backpressure, invalid doorbells, and every
 * admin command's answers and error statuses. (I/O: test_nvme_cmds.c.) */
#include "nvme_fixture.h"

TestSuite(nvme_regs, .fini = fx_teardown);
TestSuite(nvme_admin, .fini = fx_teardown);

/* ---- options ---------------------------------------------------------------- */

Test(nvme_regs, bad_options_are_refused_with_a_sentence)
{
    fx_setup("");                       /* a bus, a broker and a temp dir */
    char odd[128], err[256], opts[256];
    snprintf(odd, sizeof odd, "%s/odd.img", fx.dir);
    int fd = open(odd, O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0 && ftruncate(fd, 1000) == 0, "cannot create %s", odd);
    close(fd);
    struct { const char *opts; const char *says; } bad[] = {
        { "", "truncate -s 64M" },
        { "image=/nonexistent/moat.img", "truncate -s 64M /nonexistent/moat.img" },
        { "image=@IMG@:lba=1024", "512 or 4096" },
        { "image=@IMG@:queues=17", "queues" },
        { "image=@IMG@:mqes=1", "mqes" },
        { "image=@IMG@:mdts=9", "mdts" },
        { "image=@IMG@:colour=red", "unknown option 'colour'" },
        { "image=@ODD@", "multiple of the 512-byte LBA size" },
        { "image=@IMG@:lba=4096:mqes=5000", "mqes" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *o = bad[i].opts, *at = strchr(o, '@');
        if (at)
            snprintf(opts, sizeof opts, "%.*s%s%s", (int)(at - o),
                     o, !strncmp(at, "@IMG@", 5) ? fx.image : odd, at + 5);
        else
            snprintf(opts, sizeof opts, "%s", o);
        err[0] = '\0';
        cr_assert(!nvme_create(&fx.bus, "bad", FX_GSI, opts, err, sizeof err),
                  "options '%s' were accepted", opts);
        cr_assert(strstr(err, bad[i].says), "options '%s': error '%s' does not say '%s'", opts,
                  err, bad[i].says);
    }
    cr_assert_null(fx.bus.slot[2], "a refused controller took a PCI slot");
    unlink(odd);
}

/* ---- registers ------------------------------------------------------------ */

Test(nvme_regs, pci_identity_cap_and_vs_exact)
{
    fx_setup("mqes=256:queues=3");
    cr_assert_eq(pci_cfg_read(fx.f, PCI_VENDOR_ID, 2), NVME_MOAT_VENDOR, "vendor ID");
    cr_assert_eq(pci_cfg_read(fx.f, PCI_DEVICE_ID, 2), NVME_MOAT_DEVICE, "device ID");
    cr_assert_eq(pci_cfg_read(fx.f, PCI_REVISION_ID, 4) >> 8, NVME_PCI_CLASS, "class 01/08/02");
    cr_assert_eq(fx.f->bar[0].kind, PCI_BAR_MEM64, "BAR0 must be 64-bit memory");
    cr_assert_eq(fx.f->msix.entries, 4, "MSI-X has %u entries, want queues + 1 = 4",
                 fx.f->msix.entries);
    uint64_t cap = reg_rd(NVME_REG_CAP, 8);
    cr_assert_eq(NVME_CAP_MQES(cap), 255, "CAP.MQES %u, want mqes - 1 = 255", NVME_CAP_MQES(cap));
    cr_assert(cap & NVME_CAP_CQR, "CAP.CQR must be set (contiguous queues required)");
    cr_assert_eq(NVME_CAP_TO(cap), 20, "CAP.TO %u, want 20 (10 s)", NVME_CAP_TO(cap));
    cr_assert_eq(NVME_CAP_DSTRD(cap), 0, "CAP.DSTRD must be 0");
    cr_assert(cap & NVME_CAP_CSS_NVM, "CAP.CSS must offer the NVM command set");
    cr_assert_eq(NVME_CAP_MPSMIN(cap) | NVME_CAP_MPSMAX(cap), 0, "4 KiB pages only");
    cr_assert_eq(cap, NVME_CAP_MAKE(255, 20, 0), "CAP %#lx has bits beyond the expected fields",
                 (unsigned long)cap);
    uint64_t halves = reg_rd(NVME_REG_CAP, 4) | reg_rd(NVME_REG_CAP + 4, 4) << 32;
    cr_assert_eq(halves, cap, "CAP read as two dwords %#lx differs from the qword %#lx",
                 (unsigned long)halves, (unsigned long)cap);
    cr_assert_eq(reg_rd(NVME_REG_VS, 4), NVME_VS_1_4, "VS must read 1.4");
    cr_assert_eq(reg_rd(NVME_REG_CSTS, 4), 0, "CSTS must be 0 at power-on");
}

Test(nvme_regs, enable_sets_rdy_and_disable_drops_queues)
{
    fx_setup("");
    fx_enable(4, 4);
    adm_expect(cmd_create_cq(1, 8, 0, true), NVME_SC_SUCCESS, "CREATE CQ 1");
    reg_wr(NVME_REG_CC, 4, FX_CC_IO);
    cr_assert_eq(reg_rd(NVME_REG_CSTS, 4) & NVME_CSTS_RDY, 0, "RDY still set after CC.EN = 0");
    fx_enable(4, 4);
    adm_expect(cmd_create_sq(1, 8, 1), NVME_SC_CQ_INVALID,
               "CREATE SQ on CQ 1 after a controller reset (CQ 1 must be gone)");
    adm_expect(cmd_create_cq(1, 8, 0, true), NVME_SC_SUCCESS, "CREATE CQ 1 again after reset");
}

Test(nvme_regs, bad_admin_queue_config_is_fatal_not_ready)
{
    fx_setup("");
    struct { uint32_t aqa; uint64_t asq, acq; const char *what; } bad[] = {
        { 0, FX_ASQ, FX_ACQ, "AQA = 0 (1-entry queues)" },
        { 0x1000u | 3u << 16, FX_ASQ, FX_ACQ, "ASQS = 4097 (reserved bit 12)" },
        { NVME_AQA_MAKE(4, 4), FX_ASQ + 0x100, FX_ACQ, "ASQ not page aligned" },
        { NVME_AQA_MAKE(4, 4), FX_ASQ, 0, "ACQ = 0" },
        { NVME_AQA_MAKE(4, 4), FX_OUTSIDE, FX_ACQ, "ASQ outside every DMA window" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint32_t csts = fx_try_enable(bad[i].aqa, bad[i].asq, bad[i].acq);
        cr_assert_eq(csts, NVME_CSTS_CFS, "%s: CSTS %#x, want CFS without RDY", bad[i].what, csts);
        reg_wr(NVME_REG_CC, 4, FX_CC_IO);
        cr_assert_eq(reg_rd(NVME_REG_CSTS, 4), 0, "%s: CC.EN = 0 must clear CFS", bad[i].what);
    }
    cr_assert_eq(fx_stats().fatal, 5, "fatal count %lu, want 5", (unsigned long)fx_stats().fatal);
    cr_assert_eq(atomic_load(&fx.p.guest_error[PCI_GERR_FATAL]), 5,
                 "the platform was told of %d fatal states, want 5 (counted and audited there)",
                 atomic_load(&fx.p.guest_error[PCI_GERR_FATAL]));
    cr_assert_geq(atomic_load(&fx.p.dma_refused), 1, "the out-of-window ASQ was not refused by DMA");
    uint32_t csts = fx_try_enable(NVME_AQA_MAKE(4096, 4096), FX_ASQ, FX_ACQ + 0x40000);
    cr_assert_eq(csts, NVME_CSTS_RDY, "4096-entry admin queues: CSTS %#x, want RDY", csts);
}

Test(nvme_regs, shutdown_reports_shst_complete)
{
    fx_setup("");
    fx_enable(4, 4);
    reg_wr(NVME_REG_CC, 4, FX_CC_IO | NVME_CC_EN | 1u << 14);      /* SHN = normal */
    uint32_t csts = (uint32_t)reg_rd(NVME_REG_CSTS, 4);
    cr_assert_eq(csts & NVME_CSTS_SHST_MASK, NVME_CSTS_SHST_DONE, "CSTS.SHST %#x, want done",
                 csts & NVME_CSTS_SHST_MASK);
    reg_wr(NVME_REG_CC, 4, FX_CC_IO);
    cr_assert_eq(reg_rd(NVME_REG_CSTS, 4), 0, "CSTS after disable, want 0");
}

Test(nvme_regs, wrong_width_or_alignment_is_refused)
{
    fx_setup("");
    struct { uint64_t off; uint32_t size; bool write; const char *what; } bad[] = {
        { NVME_REG_CC, 2, false, "16-bit read of CC" },
        { NVME_REG_CC, 1, true, "8-bit write of CC" },
        { NVME_REG_VS, 8, false, "64-bit read of the 32-bit VS" },
        { NVME_REG_CC, 8, true, "64-bit write at CC (not qword aligned)" },
        { 0x02, 4, false, "misaligned dword read of CAP" },
        { NVME_SQ_TDBL(0, 0), 8, true, "64-bit doorbell write" },
        { NVME_CQ_HDBL(0, 0), 2, true, "16-bit doorbell write" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = NVME_CC_EN;
        int before = atomic_load(&fx.p.refused);
        cr_assert_eq(fx_mmio(0, bad[i].off, bad[i].size, bad[i].write, &v), BUS_OK,
                     "%s not handled", bad[i].what);
        cr_assert_eq(atomic_load(&fx.p.refused), before + 1, "%s was not refused", bad[i].what);
    }
    cr_assert_eq(reg_rd(NVME_REG_CC, 4), 0, "a refused write changed CC");
    cr_assert_eq(reg_rd(0x40, 4), 0, "reserved register 0x40 must read 0");
    cr_assert_eq(reg_rd(0xF00, 4), 0, "reserved register 0xF00 must read 0");
    reg_wr(NVME_REG_ASQ, 4, 0x12345000u);
    reg_wr(NVME_REG_ASQ + 4, 4, 0x1u);
    cr_assert_eq(reg_rd(NVME_REG_ASQ, 8), 0x112345000ull, "ASQ written as two dwords");
    reg_wr(NVME_REG_ACQ, 8, 0x223456000ull);
    cr_assert_eq(reg_rd(NVME_REG_ACQ + 4, 4), 2, "upper half of ACQ written as a qword");
    cr_assert_eq(atomic_load(&fx.p.refused), 7, "legal accesses were refused: %s", fx.p.last_refused);
}

Test(nvme_regs, intx_follows_admin_cq_and_intms)
{
    fx_setup("");
    fx_enable(4, 4);
    struct nvme_sqe id = { .opc = NVME_ADM_IDENTIFY, .prp1 = FX_BUF, .cdw10 = NVME_CNS_CONTROLLER };
    q_put(&fx.adm, id, true);
    cr_assert_eq(atomic_load(&fx.p.intx_level), 1, "INTx not asserted for an unconsumed admin CQE");
    q_pop(&fx.adm, true);
    cr_assert_eq(atomic_load(&fx.p.intx_level), 0, "INTx still asserted after the CQ head moved");
    reg_wr(NVME_REG_INTMS, 4, 1);
    cr_assert_eq(reg_rd(NVME_REG_INTMS, 4), 1, "INTMS must read the mask");
    q_put(&fx.adm, id, true);
    cr_assert_eq(atomic_load(&fx.p.intx_level), 0, "INTx asserted while masked by INTMS");
    reg_wr(NVME_REG_INTMC, 4, 1);
    cr_assert_eq(atomic_load(&fx.p.intx_level), 1, "INTx not asserted after INTMC unmasked it");
    q_pop(&fx.adm, true);
    cr_assert_eq(atomic_load(&fx.p.intx_level), 0, "INTx asserted with an empty CQ");
}

Test(nvme_regs, quiesce_stops_and_reset_restores_power_on_state)
{
    fx_setup("");
    fx_enable(4, 4);
    adm_expect(cmd_create_cq(1, 8, 0, true), NVME_SC_SUCCESS, "CREATE CQ 1");
    pci_bus_quiesce(&fx.bus);
    uint64_t inval = fx_stats().invalid_doorbells;
    struct nvme_cqe e;
    q_put(&fx.adm, (struct nvme_sqe){ .opc = NVME_ADM_GET_FEATURES, .cdw10 = 6 }, true);
    cr_assert(!q_peek(&fx.adm, &e), "an admin command completed after quiesce");
    cr_assert_eq(fx_stats().invalid_doorbells, inval + 1, "the doorbell after quiesce not counted");
    pci_bus_reset(&fx.bus);
    cr_assert(pci_cfg_write(fx.f, PCI_COMMAND, 2, PCI_CMD_MEM | PCI_CMD_MASTER));
    cr_assert_eq(reg_rd(NVME_REG_CC, 4), 0, "CC after reset");
    cr_assert_eq(reg_rd(NVME_REG_CSTS, 4), 0, "CSTS after reset");
    cr_assert_eq(reg_rd(NVME_REG_AQA, 4) | reg_rd(NVME_REG_ASQ, 8) | reg_rd(NVME_REG_ACQ, 8), 0,
                 "AQA/ASQ/ACQ after reset");
    fx_enable(4, 4);
    adm_expect(cmd_create_sq(1, 8, 1), NVME_SC_CQ_INVALID, "SQ on CQ 1 after reset");
}

/* ---- admin queue ---------------------------------------------------------- */

Test(nvme_admin, identify_controller_round_trip_phase_one)
{
    fx_setup("mdts=4");
    fx_enable(4, 4);
    struct nvme_cqe e = adm((struct nvme_sqe){ .opc = NVME_ADM_IDENTIFY, .prp1 = FX_BUF,
                                                .cdw10 = NVME_CNS_CONTROLLER });
    cr_assert_eq(e.status & NVME_CQE_PHASE, 1, "first pass over the admin CQ must carry phase 1");
    cr_assert_eq(cqe_sc(&e), NVME_SC_SUCCESS, "IDENTIFY status %#x", cqe_sc(&e));
    cr_assert_eq(e.sqhd, 1, "SQHD %u, want 1", e.sqhd);
    cr_assert_eq(e.sqid, 0, "SQID %u, want 0", e.sqid);
    const uint8_t *d = fx_ptr(FX_BUF);
    cr_assert_eq(d[NVME_IDC_VID] | d[NVME_IDC_VID + 1] << 8, NVME_MOAT_VENDOR, "VID");
    cr_assert_eq(d[NVME_IDC_SSVID] | d[NVME_IDC_SSVID + 1] << 8, NVME_MOAT_VENDOR, "SSVID");
    cr_assert(!memcmp(d + NVME_IDC_SN, "MOAT-nvme0          ", 20), "SN: '%.20s'",
              (const char *)d + NVME_IDC_SN);
    cr_assert_eq(d[NVME_IDC_MN + 39], ' ', "MN must be space padded");
    cr_assert(!memcmp(d + NVME_IDC_FR, "1.0     ", 8), "FR: '%.8s'", (const char *)d + NVME_IDC_FR);
    cr_assert_eq(d[NVME_IDC_MDTS], 4, "MDTS %u, want the mdts option 4", d[NVME_IDC_MDTS]);
    cr_assert_eq(*(const uint32_t *)(d + NVME_IDC_VER), NVME_VS_1_4, "VER");
    cr_assert(d[NVME_IDC_OACS + 1] & (NVME_OACS_DBBUF >> 8), "OACS must offer DBBUF config");
    cr_assert_eq(d[NVME_IDC_SQES], 0x66, "SQES");
    cr_assert_eq(d[NVME_IDC_CQES], 0x44, "CQES");
    cr_assert_eq(*(const uint32_t *)(d + NVME_IDC_NN), 1, "NN");
    cr_assert_eq(d[NVME_IDC_ONCS], NVME_ONCS_DSM | NVME_ONCS_WZ, "ONCS");
    cr_assert_eq(d[NVME_IDC_VWC] & 1, 1, "VWC");
    cr_assert_eq(d[NVME_IDC_AERL], 3, "AERL");
}

Test(nvme_admin, identify_namespace_and_active_list)
{
    fx_setup("lba=4096");
    fx_enable(8, 8);
    adm_expect((struct nvme_sqe){ .opc = NVME_ADM_IDENTIFY, .nsid = 1, .prp1 = FX_BUF,
                                  .cdw10 = NVME_CNS_NAMESPACE }, NVME_SC_SUCCESS, "IDENTIFY NS 1");
    const uint8_t *d = fx_ptr(FX_BUF);
    uint64_t nsze = *(const uint64_t *)(d + NVME_IDNS_NSZE);
    cr_assert_eq(nsze, FX_IMAGE_SIZE / 4096, "NSZE %lu, want %u", (unsigned long)nsze,
                 FX_IMAGE_SIZE / 4096);
    cr_assert_eq(*(const uint64_t *)(d + NVME_IDNS_NCAP), nsze, "NCAP");
    cr_assert_eq(d[NVME_IDNS_NLBAF] | d[NVME_IDNS_FLBAS], 0, "one LBA format, in use");
    uint32_t lbaf = *(const uint32_t *)(d + NVME_IDNS_LBAF0);
    cr_assert_eq(NVME_LBAF_LBADS(lbaf), 12, "LBADS %u, want 12", NVME_LBAF_LBADS(lbaf));
    cr_assert_eq(NVME_LBAF_MS(lbaf), 0, "no metadata");
    adm_expect((struct nvme_sqe){ .opc = NVME_ADM_IDENTIFY, .nsid = 2, .prp1 = FX_BUF,
                                  .cdw10 = NVME_CNS_NAMESPACE }, NVME_SC_INVALID_NS, "NSID 2");
    adm_expect((struct nvme_sqe){ .opc = NVME_ADM_IDENTIFY, .prp1 = FX_BUF + 4096,
                                  .cdw10 = NVME_CNS_ACTIVE_NS }, NVME_SC_SUCCESS, "active list");
    const uint32_t *list = fx_ptr(FX_BUF + 4096);
    cr_assert(list[0] == 1 && list[1] == 0, "active NS list %u %u, want 1 then 0", list[0],
              list[1]);
    adm_expect((struct nvme_sqe){ .opc = NVME_ADM_IDENTIFY, .prp1 = FX_BUF, .cdw10 = 0x10 },
               NVME_SC_INVALID_FIELD, "unsupported CNS 0x10");
    adm_expect((struct nvme_sqe){ .opc = NVME_ADM_IDENTIFY, .prp1 = FX_OUTSIDE,
                                  .cdw10 = NVME_CNS_CONTROLLER },
               NVME_SC_DATA_XFER_ERROR, "IDENTIFY into memory outside every window");
}

Test(nvme_admin, wrapping_the_admin_cq_flips_the_phase)
{
    fx_setup("");
    fx_enable(4, 4);
    for (unsigned i = 0; i < 10; i++) {
        bool want = (i / 4) % 2 == 0;
        struct nvme_cqe e = adm((struct nvme_sqe){ .opc = NVME_ADM_GET_FEATURES,
                                                    .cdw10 = NVME_FEAT_VOLATILE_WC });
        cr_assert_eq(e.status & NVME_CQE_PHASE, want, "CQE %u (slot %u) phase %u, want %u", i,
                     i % 4, e.status & NVME_CQE_PHASE, want);
        cr_assert_eq(e.sqhd, (i + 1) % 4, "CQE %u SQHD %u, want %u", i, e.sqhd, (i + 1) % 4);
    }
}

Test(nvme_admin, invalid_doorbells_are_counted_not_refused)
{
    fx_setup("queues=2");
    reg_wr(NVME_SQ_TDBL(0, 0), 4, 1);                   /* controller not enabled */
    fx_enable(4, 4);
    reg_wr(NVME_SQ_TDBL(2, 0), 4, 1);                   /* SQ 2 not created */
    reg_wr(NVME_SQ_TDBL(0, 0), 4, 4);                   /* tail == queue size */
    reg_wr(NVME_CQ_HDBL(0, 0), 4, 2);                   /* head past what was posted */
    reg_wr(NVME_SQ_TDBL(9, 0), 4, 0);                   /* beyond every queue */
    cr_assert_eq(fx_stats().invalid_doorbells, 5, "invalid doorbells counted %lu, want 5",
                 (unsigned long)fx_stats().invalid_doorbells);
    cr_assert_eq(atomic_load(&fx.p.guest_error[PCI_GERR_DOORBELL]), 5,
                 "the platform was told of %d invalid doorbells, want 5 (moatctl stats shows "
                 "them)", atomic_load(&fx.p.guest_error[PCI_GERR_DOORBELL]));
    cr_assert_eq(atomic_load(&fx.p.refused), 0, "a bad doorbell value is not a hostile access: %s",
                 fx.p.last_refused);
    adm_expect((struct nvme_sqe){ .opc = NVME_ADM_IDENTIFY, .prp1 = FX_BUF,
                                  .cdw10 = NVME_CNS_CONTROLLER }, NVME_SC_SUCCESS,
               "IDENTIFY after the bad doorbells");
}

Test(nvme_admin, full_admin_cq_stops_fetching_until_the_head_moves)
{
    fx_setup("");
    fx_enable(8, 4);                                    /* the CQ holds 3 entries */
    struct nvme_sqe gf = { .opc = NVME_ADM_GET_FEATURES, .cdw10 = NVME_FEAT_VOLATILE_WC };
    for (int i = 0; i < 6; i++)
        q_put(&fx.adm, gf, false);
    reg_wr(NVME_SQ_TDBL(0, 0), 4, fx.adm.sq_tail);
    cr_assert_eq(fx_stats().admin_cmds, 3, "%lu commands ran into a 4-entry CQ, want 3",
                 (unsigned long)fx_stats().admin_cmds);
    const uint32_t *slot3 = fx_ptr(FX_ACQ + 3 * 16);
    cr_assert_eq(slot3[3] >> 16 & 1, 0, "the device wrote the CQ's last free slot (full CQ)");
    struct nvme_cqe e;
    cr_assert(q_peek(&fx.adm, &e));
    q_pop(&fx.adm, true);                               /* one slot frees */
    cr_assert_eq(fx_stats().admin_cmds, 4, "head moved by 1: %lu commands, want 4",
                 (unsigned long)fx_stats().admin_cmds);
    for (int i = 0; i < 3; i++) {
        cr_assert(q_peek(&fx.adm, &e), "CQE %d missing", i + 1);
        q_pop(&fx.adm, true);
    }
    cr_assert_eq(fx_stats().admin_cmds, 6, "after draining: %lu commands, want 6",
                 (unsigned long)fx_stats().admin_cmds);
    for (int i = 0; i < 2; i++) {
        cr_assert(q_peek(&fx.adm, &e), "CQE %d missing", i + 4);
        q_pop(&fx.adm, true);
    }
    cr_assert_eq(e.sqhd, 6, "last SQHD %u, want 6", e.sqhd);
}

Test(nvme_admin, queue_create_delete_errors_have_exact_status)
{
    fx_setup("queues=2:mqes=64");
    fx_enable(16, 16);
    struct nvme_sqe cq = cmd_create_cq(1, 8, 0, true);
    struct { struct nvme_sqe cmd; uint16_t want; const char *what; } cases[] = {
        { cmd_create_cq(0, 8, 0, true), NVME_SC_QID_INVALID, "CREATE CQ 0" },
        { cmd_create_cq(3, 8, 0, true), NVME_SC_QID_INVALID, "CREATE CQ 3 > queues" },
        { cmd_create_cq(1, 1, 0, true), NVME_SC_QUEUE_SIZE, "CQ of 1 entry" },
        { cmd_create_cq(1, 65, 0, true), NVME_SC_QUEUE_SIZE, "CQ of 65 > mqes entries" },
        { cmd_create_cq(1, 8, 3, true), NVME_SC_INVALID_VECTOR, "CQ on vector 3 of 3" },
        { cq, NVME_SC_SUCCESS, "CREATE CQ 1" },
        { cq, NVME_SC_QID_INVALID, "CREATE CQ 1 twice" },
        { cmd_create_sq(1, 8, 2), NVME_SC_CQ_INVALID, "SQ on missing CQ 2" },
        { cmd_create_sq(1, 8, 0), NVME_SC_CQ_INVALID, "I/O SQ on the admin CQ" },
        { cmd_create_sq(1, 8, 1), NVME_SC_SUCCESS, "CREATE SQ 1" },
        { { .opc = NVME_ADM_DELETE_CQ, .cdw10 = 1 }, NVME_SC_INVALID_DELETE, "DELETE CQ in use" },
        { { .opc = NVME_ADM_DELETE_SQ, .cdw10 = 2 }, NVME_SC_QID_INVALID, "DELETE missing SQ 2" },
        { { .opc = NVME_ADM_DELETE_SQ, .cdw10 = 0 }, NVME_SC_QID_INVALID, "DELETE admin SQ" },
        { { .opc = NVME_ADM_DELETE_SQ, .cdw10 = 1 }, NVME_SC_SUCCESS, "DELETE SQ 1" },
        { { .opc = NVME_ADM_DELETE_CQ, .cdw10 = 1 }, NVME_SC_SUCCESS, "DELETE CQ 1" },
        { { .opc = NVME_ADM_DELETE_CQ, .cdw10 = 1 }, NVME_SC_QID_INVALID, "DELETE CQ 1 twice" },
        { { .opc = 0x55 }, NVME_SC_INVALID_OPCODE, "admin opcode 0x55" },
        { { .opc = NVME_ADM_IDENTIFY, .flags = 0x40, .prp1 = FX_BUF, .cdw10 = 1 },
          NVME_SC_INVALID_FIELD, "IDENTIFY with PSDT = SGL" },
    };
    struct nvme_sqe no_pc = cq, odd = cq, outside = cq;
    no_pc.cdw11 &= ~NVME_QUEUE_PC;
    odd.prp1 += 0x200;
    outside.prp1 = FX_OUTSIDE;
    adm_expect(no_pc, NVME_SC_INVALID_FIELD, "CQ with PC = 0 (CAP.CQR = 1)");
    adm_expect(odd, NVME_SC_INVALID_PRP_OFFSET, "CQ base not page aligned");
    adm_expect(outside, NVME_SC_DATA_XFER_ERROR, "CQ base outside every window");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        adm_expect(cases[i].cmd, cases[i].want, cases[i].what);
    cr_assert_eq(fx_stats().err_queue, 12, "queue errors counted %lu, want 12",
                 (unsigned long)fx_stats().err_queue);

    reg_wr(NVME_REG_CC, 4, NVME_CC_MAKE(0, 0, 4));      /* reset, then IOSQES unset */
    memset(fx_ptr(FX_ACQ), 0, 16 * 16);
    reg_wr(NVME_REG_CC, 4, NVME_CC_MAKE(0, 0, 4) | NVME_CC_EN);
    fx.adm = (struct fx_queue){ .sqsize = 16, .cqsize = 16, .sq = FX_ASQ, .cq = FX_ACQ,
                                .phase = true, .next_cid = 1 };
    adm_expect(cq, NVME_SC_SUCCESS, "CREATE CQ 1 after re-enable");
    adm_expect(cmd_create_sq(1, 8, 1), NVME_SC_INVALID_FIELD, "SQ with CC.IOSQES != 6");
}

Test(nvme_admin, features_answer_and_validate)
{
    fx_setup("queues=4");
    fx_enable(16, 16);
    struct nvme_cqe e = adm_expect(cmd_set_feature(NVME_FEAT_NUM_QUEUES, 31u | 31u << 16),
                                   NVME_SC_SUCCESS, "NUM_QUEUES 32/32");
    cr_assert_eq(e.dw0, 3u | 3u << 16, "NUM_QUEUES granted %#x, want 3|3<<16 (4 pairs)", e.dw0);
    e = adm_expect(cmd_set_feature(NVME_FEAT_NUM_QUEUES, 1u | 0u << 16), NVME_SC_SUCCESS,
                   "NUM_QUEUES 2/1");
    cr_assert_eq(e.dw0, 1u, "NUM_QUEUES granted %#x, want 2 SQs, 1 CQ", e.dw0);
    adm_expect(cmd_create_cq(2, 8, 0, true), NVME_SC_QID_INVALID, "CQ 2 beyond the grant");
    adm_expect(cmd_create_cq(1, 8, 0, true), NVME_SC_SUCCESS, "CQ 1 within the grant");
    adm_expect(cmd_set_feature(NVME_FEAT_NUM_QUEUES, 0), NVME_SC_CMD_SEQ_ERROR,
               "NUM_QUEUES once queues exist");
    adm_expect(cmd_set_feature(NVME_FEAT_IRQ_COALESCE, 0x0A03), NVME_SC_SUCCESS, "IRQ_COALESCE");
    e = adm_expect((struct nvme_sqe){ .opc = NVME_ADM_GET_FEATURES,
                                      .cdw10 = NVME_FEAT_IRQ_COALESCE }, NVME_SC_SUCCESS, "get");
    cr_assert_eq(e.dw0, 0x0A03, "IRQ_COALESCE reads %#x, want 0x0A03", e.dw0);
    adm_expect(cmd_set_feature(NVME_FEAT_IRQ_CONFIG, 2 | NVME_FEAT_IRQ_CONFIG_CD),
               NVME_SC_SUCCESS, "IRQ_CONFIG vector 2 CD");
    e = adm_expect((struct nvme_sqe){ .opc = NVME_ADM_GET_FEATURES, .cdw10 = NVME_FEAT_IRQ_CONFIG,
                                      .cdw11 = 2 }, NVME_SC_SUCCESS, "get IRQ_CONFIG");
    cr_assert_eq(e.dw0, 2 | NVME_FEAT_IRQ_CONFIG_CD, "IRQ_CONFIG reads %#x", e.dw0);
    adm_expect(cmd_set_feature(NVME_FEAT_IRQ_CONFIG, 5), NVME_SC_INVALID_FIELD,
               "IRQ_CONFIG of vector 5 (of 5 entries, 0..4)");
    adm_expect(cmd_set_feature(NVME_FEAT_VOLATILE_WC, 0), NVME_SC_SUCCESS, "VWC off");
    e = adm_expect((struct nvme_sqe){ .opc = NVME_ADM_GET_FEATURES,
                                      .cdw10 = NVME_FEAT_VOLATILE_WC }, NVME_SC_SUCCESS, "get VWC");
    cr_assert_eq(e.dw0, 0, "VWC reads %u after disabling it", e.dw0);
    e = adm_expect((struct nvme_sqe){ .opc = NVME_ADM_GET_FEATURES,
                                      .cdw10 = NVME_FEAT_VOLATILE_WC | 3u << 8 },
                   NVME_SC_SUCCESS, "get VWC capabilities");
    cr_assert_eq(e.dw0, NVME_FEAT_CAP_CHANGEABLE, "SEL=3 reads %#x, want changeable", e.dw0);
    adm_expect(cmd_set_feature(0x55, 0), NVME_SC_INVALID_FIELD, "unknown feature 0x55");
    adm_expect(cmd_set_feature(NVME_FEAT_VOLATILE_WC | NVME_FEAT_SV, 1),
               NVME_SC_FEAT_NOT_SAVEABLE, "SET FEATURES with SV");
}

Test(nvme_admin, abort_async_events_and_log_pages)
{
    fx_setup("");
    fx_enable(16, 16);
    struct nvme_cqe e = adm_expect((struct nvme_sqe){ .opc = NVME_ADM_ABORT,
                                                      .cdw10 = 1 | 7u << 16 },
                                   NVME_SC_SUCCESS, "ABORT of a command that does not exist");
    cr_assert_eq(e.dw0 & 1, NVME_ABORT_NOT_ABORTED, "ABORT dw0 %#x, want bit 0 = not aborted",
                 e.dw0);
    for (int i = 0; i < 4; i++) {
        q_put(&fx.adm, (struct nvme_sqe){ .opc = NVME_ADM_ASYNC_EVENT }, true);
        cr_assert(!q_peek(&fx.adm, &e), "ASYNC EVENT REQUEST %d completed: no event exists", i);
    }
    adm_expect((struct nvme_sqe){ .opc = NVME_ADM_ASYNC_EVENT }, NVME_SC_AER_LIMIT,
               "the fifth ASYNC EVENT REQUEST (AERL = 3)");
    memset(fx_ptr(FX_BUF), 0xEE, 512);
    adm_expect((struct nvme_sqe){ .opc = NVME_ADM_GET_LOG_PAGE, .prp1 = FX_BUF,
                                  .cdw10 = NVME_LOG_SMART | 127u << 16 }, NVME_SC_SUCCESS, "SMART");
    const uint8_t *d = fx_ptr(FX_BUF);
    cr_assert_eq(d[NVME_SMART_TEMP] | d[NVME_SMART_TEMP + 1] << 8, 300, "SMART temperature");
    cr_assert_eq(d[0] | d[511], 0, "SMART page not transferred whole");
    adm_expect((struct nvme_sqe){ .opc = NVME_ADM_GET_LOG_PAGE, .prp1 = FX_BUF, .cdw10 = 0x80 },
               NVME_SC_INVALID_LOG_PAGE, "log page 0x80");
    adm_expect((struct nvme_sqe){ .opc = NVME_ADM_GET_LOG_PAGE, .prp1 = FX_BUF,
                                  .cdw10 = NVME_LOG_ERROR | 0xFFFu << 16, .cdw11 = 1 },
               NVME_SC_INVALID_FIELD, "log page longer than 4 KiB");
}

Test(nvme_admin, doorbell_buffer_config_validates_its_pages)
{
    fx_setup("");
    fx_enable(8, 8);
    struct { uint64_t dbs, eis; uint16_t want; const char *what; } cases[] = {
        { 0, FX_EIS, NVME_SC_INVALID_FIELD, "shadow page 0" },
        { FX_DBS + 8, FX_EIS, NVME_SC_INVALID_FIELD, "shadow page not aligned" },
        { FX_DBS, FX_EIS + 0x100, NVME_SC_INVALID_FIELD, "EventIdx page not aligned" },
        { FX_DBS, FX_OUTSIDE, NVME_SC_INVALID_FIELD, "EventIdx page outside every window" },
        { FX_OUTSIDE, FX_EIS, NVME_SC_INVALID_FIELD, "shadow page outside every window" },
        { FX_DBS, FX_EIS, NVME_SC_SUCCESS, "valid pages" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        adm_expect((struct nvme_sqe){ .opc = NVME_ADM_DBBUF_CONFIG, .prp1 = cases[i].dbs,
                                      .prp2 = cases[i].eis }, cases[i].want, cases[i].what);
}
