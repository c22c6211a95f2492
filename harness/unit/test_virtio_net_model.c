/* virtio-net device model (devmodel/virtio_net*.c) driven through its BARs
 * like a driver: modern capabilities and common config, feature
 * negotiation (modern FEATURES_OK rules, legacy 32-bit), queue setup,
 * frames both ways through the switch with the right header lengths and
 * num_buffers, drops, MSI-X versus INTx + ISR, EVENT_IDX suppression,
 * malformed chains (DEVICE_NEEDS_RESET / stopped legacy queue) and
 * recovery by reset, the legacy fixed queue sizes, refused register
 * accesses, ioeventfds, quiesce and incarnation reset. */
#include "vnet_fixture.h"

TestSuite(vnet_modern, .fini = vx_teardown);
TestSuite(vnet_legacy, .fini = vx_teardown);
TestSuite(vnet_common, .fini = vx_teardown);

/* ---- modern: identity, capabilities, registers ---------------------------- */

/* Find the vendor capability of cfg_type type; its config offset or 0. */
static uint16_t find_vcap(uint8_t type)
{
    for (uint32_t p = pci_cfg_read(vx.f, PCI_CAP_PTR, 1), n = 0; p && n < 48; n++) {
        if (pci_cfg_read(vx.f, p, 1) == PCI_CAP_ID_VENDOR &&
            pci_cfg_read(vx.f, p + VIRTIO_PCI_CAP_CFG_TYPE, 1) == type)
            return (uint16_t)p;
        p = pci_cfg_read(vx.f, p + 1, 1);
    }
    return 0;
}

Test(vnet_modern, identity_and_capability_list)
{
    vx_setup("");
    cr_assert_eq(pci_cfg_read(vx.f, PCI_VENDOR_ID, 2), 0x1af4, "vendor ID");
    cr_assert_eq(pci_cfg_read(vx.f, PCI_DEVICE_ID, 2), 0x1041, "modern net device ID");
    cr_assert_eq(pci_cfg_read(vx.f, PCI_REVISION_ID, 1), 1, "modern devices have revision 1");
    cr_assert_eq(pci_cfg_read(vx.f, PCI_REVISION_ID, 4) >> 8, 0x020000, "class 02/00/00");
    cr_assert_eq(vx.f->bar[VNET_BAR_MSIX].kind, PCI_BAR_MEM32, "BAR1 32-bit memory");
    cr_assert_eq(vx.f->bar[VNET_BAR_MSIX].size, 4096, "BAR1 4 KiB");
    cr_assert_eq(vx.f->bar[VNET_BAR_MODERN].kind, PCI_BAR_MEM64, "BAR4 64-bit memory");
    cr_assert_eq(vx.f->bar[VNET_BAR_MODERN].size, VNET_MODERN_BAR_SIZE, "BAR4 16 KiB");
    struct { uint8_t type; uint32_t off, min_len; } want[] = {
        { VIRTIO_PCI_CAP_COMMON_CFG, VNET_COMMON_OFF, VIRTIO_COMMON_SIZE },
        { VIRTIO_PCI_CAP_NOTIFY_CFG, VNET_NOTIFY_OFF, VNET_NOTIFY_MULT + 2 },
        { VIRTIO_PCI_CAP_ISR_CFG, VNET_ISR_OFF, 1 },
        { VIRTIO_PCI_CAP_DEVICE_CFG, VNET_DEVICE_OFF, VIRTIO_NET_CFG_STATUS + 2 },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        uint16_t c = find_vcap(want[i].type);
        cr_assert_neq(c, 0, "no vendor capability of cfg_type %u", want[i].type);
        bool notify = want[i].type == VIRTIO_PCI_CAP_NOTIFY_CFG;
        cr_assert_eq(pci_cfg_read(vx.f, c + VIRTIO_PCI_CAP_CAPLEN, 1),
                     notify ? VIRTIO_PCI_NOTIFY_CAP_LEN : VIRTIO_PCI_CAP_LEN,
                     "cfg_type %u: cap_len", want[i].type);
        cr_assert_eq(pci_cfg_read(vx.f, c + VIRTIO_PCI_CAP_BAR, 1), VNET_BAR_MODERN,
                     "cfg_type %u: bar", want[i].type);
        cr_assert_eq(pci_cfg_read(vx.f, c + VIRTIO_PCI_CAP_OFFSET, 4), want[i].off,
                     "cfg_type %u: offset", want[i].type);
        uint32_t len = pci_cfg_read(vx.f, c + VIRTIO_PCI_CAP_LENGTH, 4);
        cr_assert(len >= want[i].min_len && want[i].off + len <= VNET_MODERN_BAR_SIZE,
                  "cfg_type %u: length %u", want[i].type, len);
        if (notify)
            cr_assert_eq(pci_cfg_read(vx.f, c + VIRTIO_PCI_CAP_MULTIPLIER, 4), VNET_NOTIFY_MULT,
                         "notify_off_multiplier");
    }
    cr_assert_neq(vx.f->msix.cap, 0, "no MSI-X capability");
    cr_assert_eq(vx.f->msix.entries, VNET_MSIX_VECTORS, "MSI-X vectors");
    cr_assert_eq(pci_cfg_read(vx.f, vx.f->msix.cap + PCI_MSIX_TABLE, 4),
                 VNET_MSIX_TABLE_OFF | VNET_BAR_MSIX, "MSI-X table in BAR1 at 0");
    cr_assert_eq(pci_cfg_read(vx.f, vx.f->msix.cap + PCI_MSIX_PBA, 4),
                 VNET_MSIX_PBA_OFF | VNET_BAR_MSIX, "MSI-X PBA in BAR1 at 0x800");
    cr_assert_eq(cm_rd(VIRTIO_COMMON_NUMQ, 2), 2, "num_queues");
    cr_assert_eq(cm_rd(VIRTIO_COMMON_STATUS, 1), 0, "status at power-on");
    cr_assert_eq(cm_rd(VIRTIO_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR, "config vector at power-on");
}

Test(vnet_modern, device_features_through_the_select_window)
{
    vx_setup("");
    cm_wr(VIRTIO_COMMON_DFSELECT, 4, 0);
    uint32_t lo = (uint32_t)cm_rd(VIRTIO_COMMON_DF, 4);
    cm_wr(VIRTIO_COMMON_DFSELECT, 4, 1);
    uint32_t hi = (uint32_t)cm_rd(VIRTIO_COMMON_DF, 4);
    cm_wr(VIRTIO_COMMON_DFSELECT, 4, 2);
    uint32_t beyond = (uint32_t)cm_rd(VIRTIO_COMMON_DF, 4);
    uint32_t want_lo = (uint32_t)(VIRTIO_BIT(VIRTIO_NET_F_MAC) | VIRTIO_BIT(VIRTIO_NET_F_STATUS) |
                                  VIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX) |
                                  VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF));
    cr_assert_eq(lo, want_lo, "features 0..31 %#x, want %#x", lo, want_lo);
    cr_assert_eq(hi, 1u, "features 32..63 %#x, want VERSION_1 only", hi);
    cr_assert_eq(beyond, 0, "feature window 2 must read 0");
    cr_assert_eq(cm_rd(VIRTIO_COMMON_DFSELECT, 4), 2, "device_feature_select reads back");
}

Test(vnet_modern, options_switch_features_off)
{
    vx_setup("event_idx=0:mrg_rxbuf=0:status=0");
    cm_wr(VIRTIO_COMMON_DFSELECT, 4, 0);
    cr_assert_eq(cm_rd(VIRTIO_COMMON_DF, 4), VIRTIO_BIT(VIRTIO_NET_F_MAC),
                 "only MAC must be offered in bits 0..31");
}

Test(vnet_modern, features_ok_accepted_for_an_offered_subset)
{
    vx_setup("poll_us=0");
    vx_modern_up(VX_MODERN_FEATURES | VIRTIO_BIT(VIRTIO_NET_F_STATUS), 64);
    cm_wr(VIRTIO_COMMON_GFSELECT, 4, 0);
    cr_assert_eq(cm_rd(VIRTIO_COMMON_GF, 4),
                 (uint32_t)(VIRTIO_BIT(VIRTIO_NET_F_MAC) | VIRTIO_BIT(VIRTIO_NET_F_STATUS)),
                 "driver_feature reads back what was written");
    cr_assert_eq(vx_stats().bad_features, 0, "a valid negotiation counted as bad");
    /* Only a reset ends negotiation: a status write dropping the bits
     * leaves the device live. */
    cm_wr(VIRTIO_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    cr_assert_eq(cm_rd(VIRTIO_COMMON_STATUS, 1) & (VIRTIO_STATUS_FEATURES_OK |
                                                   VIRTIO_STATUS_DRIVER_OK),
                 VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK,
                 "FEATURES_OK / DRIVER_OK cleared without a reset");
    vx_rx_post(1526, NULL);
    vx_peer_send(64, 1, NULL);
    cr_assert_eq(vx_used_idx(VX_RX), 1, "the device stopped after a status write without reset");
}

Test(vnet_modern, features_ok_refused_for_an_unoffered_bit)
{
    vx_setup("");
    uint8_t st = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;
    cm_wr(VIRTIO_COMMON_STATUS, 1, st);
    cm_wr(VIRTIO_COMMON_GFSELECT, 4, 0);
    cm_wr(VIRTIO_COMMON_GF, 4, VIRTIO_BIT(VIRTIO_NET_F_MAC) | VIRTIO_BIT(VIRTIO_NET_F_CSUM));
    cm_wr(VIRTIO_COMMON_GFSELECT, 4, 1);
    cm_wr(VIRTIO_COMMON_GF, 4, 1);      /* VERSION_1 */
    cm_wr(VIRTIO_COMMON_STATUS, 1, st | VIRTIO_STATUS_FEATURES_OK);
    cr_assert_eq(cm_rd(VIRTIO_COMMON_STATUS, 1), st,
                 "FEATURES_OK must read back clear when CSUM (not offered) was accepted");
    cr_assert_eq(vx_stats().bad_features, 1, "the refusal was not counted");
    cm_wr(VIRTIO_COMMON_STATUS, 1, st | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
    cr_assert_eq(cm_rd(VIRTIO_COMMON_STATUS, 1) & VIRTIO_STATUS_DRIVER_OK, 0,
                 "DRIVER_OK without negotiated features must not stick");
    cm_wr(VIRTIO_COMMON_GFSELECT, 4, 2);
    cm_wr(VIRTIO_COMMON_GF, 4, 1);      /* a bit above 63 */
    cm_wr(VIRTIO_COMMON_GFSELECT, 4, 0);
    cm_wr(VIRTIO_COMMON_GF, 4, VIRTIO_BIT(VIRTIO_NET_F_MAC));
    cm_wr(VIRTIO_COMMON_STATUS, 1, st | VIRTIO_STATUS_FEATURES_OK);
    cr_assert_eq(cm_rd(VIRTIO_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK, 0,
                 "FEATURES_OK must be refused when a bit above 63 was accepted");
    cm_wr(VIRTIO_COMMON_STATUS, 1, 0);      /* reset forgets it */
    vx_modern_up(VX_MODERN_FEATURES, 64);
}

Test(vnet_modern, features_ok_refused_without_version_1)
{
    vx_setup("");
    uint8_t st = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;
    cm_wr(VIRTIO_COMMON_STATUS, 1, st);
    cm_wr(VIRTIO_COMMON_GFSELECT, 4, 0);
    cm_wr(VIRTIO_COMMON_GF, 4, VIRTIO_BIT(VIRTIO_NET_F_MAC));
    cm_wr(VIRTIO_COMMON_STATUS, 1, st | VIRTIO_STATUS_FEATURES_OK);
    cr_assert_eq(cm_rd(VIRTIO_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK, 0,
                 "a modern device must refuse FEATURES_OK without VERSION_1");
    cr_assert_eq(vx_stats().bad_features, 1, "the refusal was not counted");
}

Test(vnet_modern, queue_registers_size_vector_and_enable)
{
    vx_setup("qsize=256");
    cm_wr(VIRTIO_COMMON_Q_SELECT, 2, VX_TX);
    cr_assert_eq(cm_rd(VIRTIO_COMMON_Q_SIZE, 2), 256, "queue_size starts at the maximum");
    cr_assert_eq(cm_rd(VIRTIO_COMMON_Q_NOFF, 2), VX_TX, "queue_notify_off of queue 1");
    cm_wr(VIRTIO_COMMON_Q_SIZE, 2, 64);
    cr_assert_eq(cm_rd(VIRTIO_COMMON_Q_SIZE, 2), 64, "the driver may lower the size");
    cm_wr(VIRTIO_COMMON_Q_SIZE, 2, 100);
    cm_wr(VIRTIO_COMMON_Q_SIZE, 2, 512);
    cr_assert_eq(cm_rd(VIRTIO_COMMON_Q_SIZE, 2), 64, "non-power-of-two / over-max sizes kept");
    cr_assert_eq(vx_stats().bad_queue_config, 2, "ignored sizes not counted");
    cm_wr(VIRTIO_COMMON_Q_MSIX, 2, 2);
    cr_assert_eq(cm_rd(VIRTIO_COMMON_Q_MSIX, 2), 2, "queue vector 2 reads back");
    cm_wr(VIRTIO_COMMON_Q_MSIX, 2, 7);
    cr_assert_eq(cm_rd(VIRTIO_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR,
                 "a vector the device lacks must read back NO_VECTOR");
    cm_wr(VIRTIO_COMMON_Q_DESCLO, 4, (uint32_t)VX_RING(1) + 8);     /* misaligned */
    cm_wr(VIRTIO_COMMON_Q_DESCHI, 4, (uint32_t)(VX_RING(1) >> 32));
    cm_wr(VIRTIO_COMMON_Q_ENABLE, 2, 1);
    cr_assert_eq(cm_rd(VIRTIO_COMMON_Q_ENABLE, 2), 0, "a misaligned descriptor table enabled");
    cr_assert_eq(cm_rd(VIRTIO_COMMON_Q_DESCLO, 4) | cm_rd(VIRTIO_COMMON_Q_DESCHI, 4) << 32,
                 VX_RING(1) + 8, "queue_desc reads back both halves");
    cm_wr(VIRTIO_COMMON_Q_SELECT, 2, 2);
    cr_assert_eq(cm_rd(VIRTIO_COMMON_Q_SIZE, 2), 0, "queue 2 does not exist: size 0");
    cr_assert_eq(vx_stats().bad_queue_config, 3, "the refused enable was not counted");
}

Test(vnet_modern, wrong_width_or_offset_is_refused)
{
    vx_setup("");
    struct { unsigned bar; uint64_t off; uint32_t size; bool write; const char *what; } bad[] = {
        { 4, VIRTIO_COMMON_DF, 2, false, "16-bit read of device_feature" },
        { 4, VIRTIO_COMMON_STATUS, 4, true, "32-bit write of device_status" },
        { 4, VIRTIO_COMMON_Q_SIZE, 1, false, "8-bit read of queue_size" },
        { 4, VIRTIO_COMMON_Q_DESCLO, 8, true, "64-bit write of queue_desc" },
        { 4, VIRTIO_COMMON_DF + 1, 1, false, "read inside device_feature" },
        { 4, VIRTIO_COMMON_NUMQ, 2, true, "write of read-only num_queues" },
        { 4, VIRTIO_COMMON_CFGGEN, 1, true, "write of read-only config_generation" },
        { 4, 0x40, 4, false, "common config beyond its registers" },
        { 4, VNET_ISR_OFF, 4, false, "32-bit ISR read" },
        { 4, VNET_ISR_OFF, 1, true, "ISR write" },
        { 4, VNET_DEVICE_OFF, 1, true, "device config write" },
        { 4, VNET_DEVICE_OFF + 1, 2, false, "misaligned device config read" },
        { 4, VNET_DEVICE_OFF + 12, 1, false, "device config beyond its length" },
        { 4, VNET_NOTIFY_OFF, 2, false, "notify read" },
        { 4, VNET_NOTIFY_OFF, 4, true, "32-bit notify write" },
        { 4, VNET_NOTIFY_OFF + 2, 2, true, "notify write between queues" },
        { 4, VNET_NOTIFY_OFF + 8, 2, true, "notify of a queue that does not exist" },
        { 1, 0x100, 4, false, "BAR1 outside the MSI-X table" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = VIRTIO_STATUS_ACKNOWLEDGE;
        int before = atomic_load(&vx.p.refused);
        uint64_t bad_before = vx_stats().bad_registers;
        cr_assert_eq(vx_bar(bad[i].bar, bad[i].off, bad[i].size, bad[i].write, &v), BUS_OK,
                     "%s not handled", bad[i].what);
        cr_assert_eq(atomic_load(&vx.p.refused), before + 1, "%s was not refused", bad[i].what);
        cr_assert_eq(vx_stats().bad_registers, bad_before + 1, "%s not counted", bad[i].what);
        if (!bad[i].write)
            cr_assert_eq(v, 0, "%s: a refused read returned %#lx, want 0", bad[i].what,
                         (unsigned long)v);
    }
    cr_assert_eq(cm_rd(VIRTIO_COMMON_STATUS, 1), 0, "a refused write changed the status");
    cr_assert_eq(vx_stats().notifies, 0, "a refused notify reached the worker");
}

/* ---- modern: frames ------------------------------------------------------ */

Test(vnet_modern, tx_frame_reaches_the_switch_without_its_header)
{
    vx_setup("");
    vx_modern_up(VX_MODERN_FEATURES, 64);
    uint8_t f[100], mac[6];
    vx_dev_mac(mac);
    vx_frame(f, sizeof f, vx_peer_mac, mac, 7);
    uint16_t head = vx_tx_post(f, sizeof f);
    vx_kick(VX_TX);
    vx_wait_peer(1, "TX frame");
    pthread_mutex_lock(&vx.peer_mu);
    cr_assert_eq(vx.peer_len, sizeof f, "the switch got %zu bytes, want %zu (12-byte header "
                 "stripped)", vx.peer_len, sizeof f);
    cr_assert(!memcmp(vx.peer_frame, f, sizeof f), "frame bytes differ");
    pthread_mutex_unlock(&vx.peer_mu);
    vx_wait_used(VX_TX, 1, "TX completion");
    struct virtq_used_elem e = vx_used_elem(VX_TX, 0);
    cr_assert(e.id == head && e.len == 0, "TX used elem {%u, %u}, want {%u, 0}", e.id, e.len, head);
    struct virtio_net_stats s = vx_stats();
    cr_assert(s.tx_frames == 1 && s.tx_bytes == sizeof f, "tx stats %lu frames %lu bytes",
              (unsigned long)s.tx_frames, (unsigned long)s.tx_bytes);
    cr_assert_eq(s.notifies, 1, "the MMIO notify was not counted");
}

Test(vnet_modern, tx_of_a_bad_length_completes_empty_and_is_not_fatal)
{
    vx_setup("poll_us=0");
    vx_modern_up(VX_MODERN_FEATURES, 64);
    uint8_t f[1600] = { 0 };
    vx_tx_post(f, 5);                   /* header + 5 bytes: shorter than Ethernet */
    vx_tx_post(f, ETH_FRAME_MAX + 1);   /* header + 1515 bytes */
    vx_kick(VX_TX);
    vx_wait_used(VX_TX, 2, "bad-length TX chains");
    cr_assert_eq(vx_used_elem(VX_TX, 0).len, 0, "a dropped TX chain completes with length 0");
    struct virtio_net_stats s = vx_stats();
    cr_assert_eq(s.tx_bad_len, 2, "tx_bad_len %lu, want 2", (unsigned long)s.tx_bad_len);
    cr_assert_eq(s.tx_frames, 0, "a bad-length frame was sent");
    cr_assert_eq(atomic_load(&vx.peer_frames), 0, "a bad-length frame reached the switch");
    cr_assert_eq(vx_status() & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0, "bad length is not malformed");
    uint8_t good[60], mac[6];
    vx_dev_mac(mac);
    vx_frame(good, sizeof good, vx_peer_mac, mac, 1);
    vx_tx_post(good, sizeof good);
    vx_kick(VX_TX);
    vx_wait_peer(1, "a good frame after the bad ones");
}

Test(vnet_modern, rx_frame_lands_with_a_12_byte_header)
{
    vx_setup("");
    vx_modern_up(VX_MODERN_FEATURES, 64);
    uint64_t buf;
    uint16_t head = vx_rx_post(1526, &buf);
    uint8_t sent[300];
    vx_peer_send(sizeof sent, 3, sent);
    cr_assert_eq(vx_used_idx(VX_RX), 1, "RX used idx %u after delivery, want 1", vx_used_idx(VX_RX));
    struct virtq_used_elem e = vx_used_elem(VX_RX, 0);
    cr_assert(e.id == head && e.len == 12 + sizeof sent, "RX used elem {%u, %u}, want {%u, %zu}",
              e.id, e.len, head, 12 + sizeof sent);
    const uint8_t *b = vx_ptr(buf);
    static const uint8_t want_hdr[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0 };
    cr_assert(!memcmp(b, want_hdr, 12), "header %02x.. with num_buffers %u, want zeros and 1",
              b[0], b[10] | b[11] << 8);
    cr_assert(!memcmp(b + 12, sent, sizeof sent), "frame bytes differ after the header");
    cr_assert_eq(b[12 + sizeof sent], 0xEE, "the device wrote past the frame");
    struct virtio_net_stats s = vx_stats();
    cr_assert(s.rx_frames == 1 && s.rx_bytes == sizeof sent, "rx stats %lu/%lu",
              (unsigned long)s.rx_frames, (unsigned long)s.rx_bytes);
}

Test(vnet_modern, rx_with_mrg_rxbuf_spans_buffers_and_sets_num_buffers)
{
    vx_setup("");
    vx_modern_up(VX_MODERN_FEATURES | VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF), 64);
    uint64_t buf[3];
    uint16_t head[3];
    for (int i = 0; i < 3; i++)
        head[i] = vx_rx_post(600, &buf[i]);
    uint8_t sent[1400];
    vx_peer_send(sizeof sent, 9, sent);
    cr_assert_eq(vx_used_idx(VX_RX), 3, "a 1412-byte stream in 600-byte buffers uses 3, got %u",
                 vx_used_idx(VX_RX));
    uint32_t want_len[3] = { 600, 600, 12 + 1400 - 1200 };
    for (uint16_t i = 0; i < 3; i++) {
        struct virtq_used_elem e = vx_used_elem(VX_RX, i);
        cr_assert(e.id == head[i] && e.len == want_len[i], "used %u: {%u, %u}, want {%u, %u}", i,
                  e.id, e.len, head[i], want_len[i]);
    }
    const uint8_t *b0 = vx_ptr(buf[0]);
    cr_assert_eq(b0[10] | b0[11] << 8, 3, "num_buffers %u, want 3", b0[10] | b0[11] << 8);
    uint8_t got[1400];
    memcpy(got, b0 + 12, 588);
    memcpy(got + 588, vx_ptr(buf[1]), 600);
    memcpy(got + 1188, vx_ptr(buf[2]), 212);
    cr_assert(!memcmp(got, sent, sizeof sent), "frame bytes differ across merged buffers");
}

Test(vnet_modern, rx_without_buffers_drops_and_gives_partial_buffers_back)
{
    vx_setup("");
    vx_modern_up(VX_MODERN_FEATURES | VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF), 64);
    vx_peer_send(100, 1, NULL);
    cr_assert_eq(vx_stats().rx_no_buffer, 1, "a frame with no buffer posted was not counted");
    uint64_t buf;
    uint16_t head = vx_rx_post(600, &buf);
    vx_peer_send(1000, 2, NULL);        /* needs two 600-byte buffers; one posted */
    cr_assert_eq(vx_stats().rx_no_buffer, 2, "short of buffers: not counted");
    cr_assert_eq(vx_used_idx(VX_RX), 0, "a partial frame was published");
    vx_rx_post(600, NULL);
    uint8_t sent[1000];
    vx_peer_send(sizeof sent, 4, sent);
    cr_assert_eq(vx_used_idx(VX_RX), 2, "after a second buffer the frame fills both");
    cr_assert_eq(vx_used_elem(VX_RX, 0).id, head, "the given-back buffer was not used first");
    cr_assert(!memcmp((uint8_t *)vx_ptr(buf) + 12, sent, 588), "the first buffer holds stale data");
}

Test(vnet_modern, rx_chain_too_small_drops_but_keeps_the_buffer)
{
    vx_setup("");
    vx_modern_up(VX_MODERN_FEATURES, 64);
    uint16_t head = vx_rx_post(100, NULL);
    vx_peer_send(200, 1, NULL);
    cr_assert_eq(vx_stats().rx_too_big, 1, "200 bytes into a 100-byte chain: not counted");
    cr_assert_eq(vx_used_idx(VX_RX), 0, "the too-small chain was consumed");
    vx_peer_send(60, 2, NULL);
    cr_assert_eq(vx_used_idx(VX_RX), 1, "a 60-byte frame fits the kept 100-byte chain");
    cr_assert(vx_used_elem(VX_RX, 0).id == head && vx_used_elem(VX_RX, 0).len == 72,
              "used {%u, %u}", vx_used_elem(VX_RX, 0).id, vx_used_elem(VX_RX, 0).len);
}

/* ---- modern: interrupts ------------------------------------------------ */

Test(vnet_modern, msix_vectors_as_the_driver_programs_them)
{
    vx_setup("");
    vx_msix_on();
    cm_wr(VIRTIO_COMMON_MSIX, 2, 0);
    cr_assert_eq(cm_rd(VIRTIO_COMMON_MSIX, 2), 0, "config vector 0");
    for (unsigned qi = 0; qi < 2; qi++) {
        cm_wr(VIRTIO_COMMON_Q_SELECT, 2, qi);
        cm_wr(VIRTIO_COMMON_Q_MSIX, 2, qi + 1);
    }
    vx_modern_up(VX_MODERN_FEATURES | VIRTIO_BIT(VIRTIO_NET_F_STATUS), 64);
    /* vx_modern_up reset the device: vectors are programmed again after. */
    cr_assert_eq(cm_rd(VIRTIO_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR, "reset clears vectors");
    cm_wr(VIRTIO_COMMON_MSIX, 2, 0);
    for (unsigned qi = 0; qi < 2; qi++) {
        cm_wr(VIRTIO_COMMON_Q_SELECT, 2, qi);
        cm_wr(VIRTIO_COMMON_Q_MSIX, 2, qi + 1);
    }
    vx_rx_post(1526, NULL);
    vx_peer_send(64, 1, NULL);
    cr_assert_eq(atomic_load(&vx.p.msi[1]), 1, "RX completion: vector 1 fired %d times",
                 atomic_load(&vx.p.msi[1]));
    uint8_t f[60], mac[6];
    vx_dev_mac(mac);
    vx_frame(f, sizeof f, vx_peer_mac, mac, 1);
    vx_tx_post(f, sizeof f);
    vx_kick(VX_TX);
    vx_wait_used(VX_TX, 1, "TX completion");
    uint64_t end = vx_now_ms() + VX_WAIT_MS;
    while (atomic_load(&vx.p.msi[2]) < 1)
        cr_assert(vx_now_ms() < end, "TX completion did not fire vector 2");
    uint8_t gen = (uint8_t)cm_rd(VIRTIO_COMMON_CFGGEN, 1);
    cr_assert(virtio_net_set_link(vx.f, false), "set_link refused");
    cr_assert_eq(atomic_load(&vx.p.msi[0]), 1, "link change: config vector 0 fired %d times",
                 atomic_load(&vx.p.msi[0]));
    cr_assert_eq(vx_cfg16(VIRTIO_NET_CFG_STATUS), 0, "config status after link down");
    cr_assert_neq((uint8_t)cm_rd(VIRTIO_COMMON_CFGGEN, 1), gen, "config_generation not bumped");
    cr_assert_eq(atomic_load(&vx.p.intx_level), 0, "INTx asserted while MSI-X is on");
    cr_assert_eq(atomic_load(&vx.p.msi_bad), 0, "an MSI with unexpected data was sent");
    cm_wr(VIRTIO_COMMON_Q_SELECT, 2, VX_RX);
    cm_wr(VIRTIO_COMMON_Q_MSIX, 2, VIRTIO_MSI_NO_VECTOR);
    vx_rx_post(1526, NULL);
    virtio_net_set_link(vx.f, true);
    vx_peer_send(64, 2, NULL);
    cr_assert_eq(vx_used_idx(VX_RX), 2, "second RX frame not delivered");
    cr_assert_eq(atomic_load(&vx.p.msi[1]), 1, "NO_VECTOR: the RX queue must not interrupt");
}

Test(vnet_modern, intx_and_isr_without_msix)
{
    vx_setup("");
    vx_modern_up(VX_MODERN_FEATURES | VIRTIO_BIT(VIRTIO_NET_F_STATUS), 64);
    vx_rx_post(1526, NULL);
    vx_peer_send(64, 1, NULL);
    cr_assert_eq(atomic_load(&vx.p.intx_level), 1, "INTx not asserted for an RX completion");
    cr_assert_eq(vx_isr(), VIRTIO_ISR_QUEUE, "ISR must say queue");
    cr_assert_eq(atomic_load(&vx.p.intx_level), 0, "reading the ISR must lower INTx");
    cr_assert_eq(vx_isr(), 0, "the ISR read must clear it");
    virtio_net_set_link(vx.f, false);
    cr_assert_eq(atomic_load(&vx.p.intx_level), 1, "INTx not asserted for a config change");
    cr_assert_eq(vx_isr(), VIRTIO_ISR_CONFIG, "ISR must say config");
    cr_assert_eq(vx_stats().config_irqs, 1, "config interrupt not counted");
}

Test(vnet_modern, event_idx_and_no_interrupt_suppress_interrupts)
{
    vx_setup("");
    vx_modern_up(VX_MODERN_FEATURES | VIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX), 64);
    *(uint16_t *)vx_ptr(vx.q[VX_RX].avail + VIRTQ_USED_EVENT(64)) = 1;  /* after the 2nd */
    vx_rx_post(1526, NULL);
    vx_rx_post(1526, NULL);
    vx_peer_send(64, 1, NULL);
    cr_assert_eq(atomic_load(&vx.p.intx_level), 0, "used 0->1 must not pass used_event 1");
    cr_assert_eq(vx_stats().irq_suppressed, 1, "suppressed interrupt not counted");
    vx_peer_send(64, 2, NULL);
    cr_assert_eq(atomic_load(&vx.p.intx_level), 1, "used 1->2 passes used_event 1: interrupt");
    cr_assert_eq(vx_isr(), VIRTIO_ISR_QUEUE, "ISR after the interrupt");

    vx_modern_up(VX_MODERN_FEATURES, 64);       /* no EVENT_IDX: the flag rules */
    *(uint16_t *)vx_ptr(vx.q[VX_RX].avail + VIRTQ_AVAIL_FLAGS) = VIRTQ_AVAIL_F_NO_INTERRUPT;
    vx_rx_post(1526, NULL);
    vx_peer_send(64, 3, NULL);
    cr_assert_eq(vx_used_idx(VX_RX), 1, "frame not delivered with NO_INTERRUPT");
    cr_assert_eq(atomic_load(&vx.p.intx_level), 0, "NO_INTERRUPT set, yet INTx rose");
    cr_assert_eq(*(uint16_t *)vx_ptr(vx.q[VX_RX].used + VIRTQ_USED_FLAGS),
                 VIRTQ_USED_F_NO_NOTIFY, "receive refills need no kick: NO_NOTIFY expected");
}

/* ---- modern: malformed chains -------------------------------------------- */

/* Wait for DEVICE_NEEDS_RESET after the worker met a bad TX chain. */
static void expect_needs_reset(const char *what)
{
    struct virtio_net_stats s;
    VX_WAIT_STATS(s, s.needs_reset == 1, "%s: DEVICE_NEEDS_RESET not set", what);
    cr_assert(vx_status() & VIRTIO_STATUS_DEVICE_NEEDS_RESET, "%s: status lacks NEEDS_RESET", what);
}

Test(vnet_modern, looping_tx_chain_needs_reset_until_status_zero)
{
    vx_setup("poll_us=0");
    vx_msix_on();
    vx_modern_up(VX_MODERN_FEATURES, 64);
    cm_wr(VIRTIO_COMMON_MSIX, 2, 0);
    vx_desc(VX_TX, 0, VX_TXBUF, 100, VIRTQ_DESC_F_NEXT, 1);
    vx_desc(VX_TX, 1, VX_TXBUF, 100, VIRTQ_DESC_F_NEXT, 0);
    vx_publish(VX_TX, 0);
    vx_kick(VX_TX);
    expect_needs_reset("loop");
    struct virtio_net_stats s = vx_stats();
    cr_assert_eq(s.bad_chains, 1, "bad_chains %lu, want 1", (unsigned long)s.bad_chains);
    cr_assert_eq(atomic_load(&vx.p.msi[0]), 1, "NEEDS_RESET must raise the config interrupt");
    cr_assert_eq(vx_used_idx(VX_TX), 0, "the looping chain was completed");
    /* Stopped: a good TX chain is not taken, a frame is not received. */
    uint8_t f[60] = { 0 };
    vx.q[VX_TX].next_desc = 2;
    vx_tx_post(f, sizeof f);
    vx_tx_kick_and_sync("TX after NEEDS_RESET");
    cr_assert_eq(vx_used_idx(VX_TX), 0, "TX processed while the device needs reset");
    vx_rx_post(1526, NULL);
    vx_peer_send(64, 1, NULL);
    cr_assert_eq(vx_used_idx(VX_RX), 0, "RX processed while the device needs reset");
    cr_assert_eq(vx_stats().needs_reset, 1, "NEEDS_RESET counted more than once");
    cm_wr(VIRTIO_COMMON_STATUS, 1, 0);
    cr_assert_eq(cm_rd(VIRTIO_COMMON_STATUS, 1), 0, "status 0 must clear NEEDS_RESET");
    vx_modern_up(VX_MODERN_FEATURES, 64);
    uint8_t mac[6];
    vx_dev_mac(mac);
    vx_frame(f, sizeof f, vx_peer_mac, mac, 5);
    vx_tx_post(f, sizeof f);
    vx_kick(VX_TX);
    vx_wait_peer(1, "TX after the reset");
}

Test(vnet_modern, out_of_window_buffer_needs_reset_and_counts_the_refusal)
{
    vx_setup("");
    vx_modern_up(VX_MODERN_FEATURES, 64);
    vx_desc(VX_TX, 0, VX_OUTSIDE, 100, 0, 0);
    vx_publish(VX_TX, 0);
    vx_kick(VX_TX);
    expect_needs_reset("out-of-window TX buffer");
    cr_assert_geq(vx_stats().dma_refusals, 1, "the refused map was not counted");
    cr_assert_geq(atomic_load(&vx.p.dma_refused), 1, "the platform was not told of the refusal");
    cr_assert_eq(vx_stats().bad_chains, 0, "a refused DMA is counted as dma, not as malformed");
}

Test(vnet_modern, rx_buffer_outside_the_window_needs_reset)
{
    vx_setup("");
    vx_modern_up(VX_MODERN_FEATURES, 64);
    vx_desc(VX_RX, 0, VX_OUTSIDE, 1526, VIRTQ_DESC_F_WRITE, 0);
    vx_publish(VX_RX, 0);
    vx_peer_send(64, 1, NULL);
    cr_assert(vx_status() & VIRTIO_STATUS_DEVICE_NEEDS_RESET, "RX out of window: no NEEDS_RESET");
    cr_assert_geq(vx_stats().dma_refusals, 1, "the refused RX map was not counted");
}

Test(vnet_modern, avail_index_jump_and_wrong_direction_need_reset)
{
    vx_setup("");
    vx_modern_up(VX_MODERN_FEATURES, 64);
    vx_set_avail_idx(VX_RX, 65);        /* 65 ahead in a 64-entry ring */
    vx_peer_send(64, 1, NULL);
    cr_assert(vx_status() & VIRTIO_STATUS_DEVICE_NEEDS_RESET, "avail jump: no NEEDS_RESET");
    cr_assert_eq(vx_stats().bad_avail_idx, 1, "bad_avail_idx not counted");
    vx_modern_up(VX_MODERN_FEATURES, 64);
    vx_desc(VX_RX, 0, VX_RXBUF, 1526, 0, 0);        /* device-readable in the RX queue */
    vx_publish(VX_RX, 0);
    vx_peer_send(64, 1, NULL);
    cr_assert(vx_status() & VIRTIO_STATUS_DEVICE_NEEDS_RESET, "readable RX buffer: no NEEDS_RESET");
    cr_assert_eq(vx_stats().bad_chains, 1, "direction error not counted as a bad chain");
    cr_assert_eq(vx_stats().needs_reset, 2, "needs_reset counts each time it was set");
}

/* ---- modern: notifications, lifecycle ------------------------------------ */

Test(vnet_modern, notify_ioeventfds_attach_move_and_detach)
{
    vx_setup("poll_us=0");
    vx.p.ioev_accept = true;
    vx_modern_up(VX_MODERN_FEATURES, 64);
    uint64_t base = vx.f->bar[VNET_BAR_MODERN].base;
    cr_assert_geq(vx.p.ioev_calls, 2, "no ioeventfd for the two queues");
    for (int i = 0; i < 2; i++) {
        struct fake_ioev *e = &vx.p.ioev[i];
        cr_assert(!e->pio && e->assign && e->len == 2 &&
                  e->addr == base + VNET_NOTIFY_OFF + VNET_NOTIFY_MULT * (uint64_t)i,
                  "ioeventfd %d: pio %d assign %d len %u addr %#lx", i, e->pio, e->assign, e->len,
                  (unsigned long)e->addr);
    }
    /* KVM would signal the eventfd itself: no MMIO reaches the model. */
    uint8_t f[60], mac[6];
    vx_dev_mac(mac);
    vx_frame(f, sizeof f, vx_peer_mac, mac, 2);
    vx_tx_post(f, sizeof f);
    uint64_t one = 1;
    cr_assert_eq(write(vx.p.ioev[1].fd, &one, sizeof one), (ssize_t)sizeof one, "eventfd write");
    vx_wait_peer(1, "TX woken through the ioeventfd");
    cr_assert_eq(vx_stats().notifies, 0, "an ioeventfd kick is not an MMIO notify");
    /* Move BAR4: every attached ioeventfd follows. */
    uint64_t nb = base + 0x100000;
    int calls = vx.p.ioev_calls;
    cr_assert(pci_cfg_write(vx.f, PCI_BAR_REG(VNET_BAR_MODERN), 4, (uint32_t)nb | PCI_BAR_MEM_64),
              "moving BAR4 refused: %s", vx.p.last_refused);
    cr_assert_eq(vx.p.ioev_calls, calls + 4, "a move detaches and attaches both queues");
    cr_assert(!vx.p.ioev[calls].assign && vx.p.ioev[calls].addr == base + VNET_NOTIFY_OFF,
              "old notify address not detached");
    cr_assert(vx.p.ioev[calls + 1].assign && vx.p.ioev[calls + 1].addr == nb + VNET_NOTIFY_OFF,
              "new notify address not attached");
    calls = vx.p.ioev_calls;
    cm_wr(VIRTIO_COMMON_STATUS, 1, 0);
    cr_assert_eq(vx.p.ioev_calls, calls + 2, "status 0 must detach both ioeventfds");
    cr_assert(!vx.p.ioev[calls].assign && !vx.p.ioev[calls + 1].assign, "detach expected");
}

Test(vnet_modern, quiesce_stops_dma_and_reset_gives_power_on_state)
{
    vx_setup("");
    vx_modern_up(VX_MODERN_FEATURES, 64);
    uint64_t buf;
    vx_rx_post(1526, &buf);
    pci_bus_quiesce(&vx.bus);
    vx_peer_send(64, 1, NULL);
    cr_assert_eq(vx_used_idx(VX_RX), 0, "RX delivered after quiesce");
    cr_assert_eq(*(uint8_t *)vx_ptr(buf), 0xEE, "the device wrote guest memory after quiesce");
    cr_assert_eq(vx_stats().rx_no_buffer, 1, "the dropped frame was not counted");
    pci_bus_reset(&vx.bus);
    cr_assert(pci_cfg_write(vx.f, PCI_COMMAND, 2, PCI_CMD_MEM | PCI_CMD_MASTER));
    cr_assert_eq(cm_rd(VIRTIO_COMMON_STATUS, 1), 0, "status after reset");
    cm_wr(VIRTIO_COMMON_Q_SELECT, 2, VX_RX);
    cr_assert_eq(cm_rd(VIRTIO_COMMON_Q_ENABLE, 2), 0, "queue still enabled after reset");
    cr_assert_eq(cm_rd(VIRTIO_COMMON_Q_DESCLO, 4), 0, "queue address kept after reset");
    vx_modern_up(VX_MODERN_FEATURES, 64);
    vx_rx_post(1526, NULL);
    vx_peer_send(64, 2, NULL);
    cr_assert_eq(vx_used_idx(VX_RX), 1, "RX after a new incarnation");
    uint8_t f[60], mac[6];
    vx_dev_mac(mac);
    vx_frame(f, sizeof f, vx_peer_mac, mac, 3);
    vx_tx_post(f, sizeof f);
    vx_kick(VX_TX);
    vx_wait_peer(1, "TX after a new incarnation (worker restarted)");
}

/* ---- legacy ------------------------------------------------------------- */

Test(vnet_legacy, identity_io_bar_and_no_msix)
{
    vx_setup("legacy=1");
    cr_assert_eq(pci_cfg_read(vx.f, PCI_DEVICE_ID, 2), 0x1000, "legacy net device ID");
    cr_assert_eq(pci_cfg_read(vx.f, PCI_REVISION_ID, 1), 0, "legacy revision 0");
    cr_assert_eq(pci_cfg_read(vx.f, PCI_SUBSYS_VENDOR, 2), 0x1af4, "subsystem vendor");
    cr_assert_eq(pci_cfg_read(vx.f, PCI_SUBSYS_ID, 2), 1, "subsystem device = net (1)");
    cr_assert_eq(vx.f->bar[0].kind, PCI_BAR_IOPORT, "BAR0 must be I/O");
    cr_assert_eq(vx.f->bar[0].size, 32, "BAR0 is 32 bytes");
    for (unsigned n = 1; n < PCI_BARS; n++)
        cr_assert_eq(vx.f->bar[n].kind, PCI_BAR_NONE, "legacy has no BAR%u", n);
    cr_assert_eq(vx.f->msix.cap, 0, "legacy has no MSI-X");
    cr_assert_eq(pci_cfg_read(vx.f, PCI_CAP_PTR, 1), 0, "legacy has no capabilities");
    cr_assert_eq(pci_cfg_read(vx.f, PCI_INT_PIN, 1), 1, "INTA#");
}

Test(vnet_legacy, features_32_bit_mac_and_status_in_config)
{
    vx_setup("legacy=1:mac=52-54-00-ab-cd-ef");
    uint32_t host = (uint32_t)lg_rd(VIRTIO_LEGACY_HOST_FEATURES, 4);
    uint32_t want = (uint32_t)(VIRTIO_BIT(VIRTIO_NET_F_MAC) | VIRTIO_BIT(VIRTIO_NET_F_STATUS) |
                               VIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX) |
                               VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF));
    cr_assert_eq(host, want, "host features %#x, want %#x", host, want);
    lg_wr(VIRTIO_LEGACY_GUEST_FEATURES, 4, VIRTIO_BIT(VIRTIO_NET_F_MAC) |
                                           VIRTIO_BIT(VIRTIO_NET_F_CSUM));
    cr_assert_eq(lg_rd(VIRTIO_LEGACY_GUEST_FEATURES, 4), VIRTIO_BIT(VIRTIO_NET_F_MAC),
                 "an unoffered bit must be dropped from the guest features");
    cr_assert_eq(vx_stats().bad_features, 1, "the unoffered bit was not counted");
    static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef };
    for (unsigned i = 0; i < 6; i++)
        cr_assert_eq(lg_rd(VIRTIO_LEGACY_CONFIG + i, 1), mac[i], "MAC byte %u at 0x%x", i,
                     VIRTIO_LEGACY_CONFIG + i);
    cr_assert_eq(lg_rd(VIRTIO_LEGACY_CONFIG + VIRTIO_NET_CFG_STATUS, 2), VIRTIO_NET_S_LINK_UP,
                 "status at 0x1A");
    cr_assert_eq(lg_rd(VIRTIO_LEGACY_CONFIG, 4), 0xab005452u, "MAC bytes 0-3 as one dword");
    lg_wr(VIRTIO_LEGACY_CONFIG + 5, 1, 0x42);   /* legacy drivers may set the MAC */
    uint8_t now[6];
    vx_dev_mac(now);
    cr_assert_eq(now[5], 0x42, "a legacy MAC byte write was not taken");
}

/* Bring a legacy device with a fixed queue size up and move a frame each
 * way: 10-byte header, rings where the single-PFN layout puts them. */
static void legacy_round_trip(uint32_t qsize)
{
    char opts[64];
    snprintf(opts, sizeof opts, "legacy=1:qsize=%u", qsize);
    vx_setup(opts);
    for (unsigned qi = 0; qi < 2; qi++) {
        lg_wr(VIRTIO_LEGACY_QUEUE_SEL, 2, qi);
        cr_assert_eq(lg_rd(VIRTIO_LEGACY_QUEUE_NUM, 2), qsize, "queue %u size", qi);
    }
    lg_wr(VIRTIO_LEGACY_QUEUE_SEL, 2, 2);
    cr_assert_eq(lg_rd(VIRTIO_LEGACY_QUEUE_NUM, 2), 0, "queue 2 does not exist");
    vx_legacy_up((uint32_t)VIRTIO_BIT(VIRTIO_NET_F_MAC));
    cr_assert_eq(vx.hdr_len, 10, "legacy header without MRG_RXBUF");
    lg_wr(VIRTIO_LEGACY_QUEUE_SEL, 2, VX_TX);
    cr_assert_eq(lg_rd(VIRTIO_LEGACY_QUEUE_PFN, 4), VX_RING(VX_TX) >> 12, "PFN reads back");
    /* Start the rings near the end so the last slots are used too. */
    uint8_t f[200], mac[6];
    vx_dev_mac(mac);
    vx_frame(f, sizeof f, vx_peer_mac, mac, 4);
    vx.q[VX_TX].next_desc = (uint16_t)(qsize - 1u);     /* chain qsize-1 -> 0 */
    uint16_t head = vx_tx_post(f, sizeof f);
    vx_kick(VX_TX);
    vx_wait_peer(1, "legacy TX");
    pthread_mutex_lock(&vx.peer_mu);
    cr_assert(vx.peer_len == sizeof f && !memcmp(vx.peer_frame, f, sizeof f),
              "qsize %u: the switch got %zu bytes, want the %zu-byte frame (10-byte header "
              "stripped)", qsize, vx.peer_len, sizeof f);
    pthread_mutex_unlock(&vx.peer_mu);
    vx_wait_used(VX_TX, 1, "legacy TX completion");
    cr_assert_eq(vx_used_elem(VX_TX, 0).id, head, "TX used id");
    uint64_t used_ring = VX_RING(VX_TX) + virtq_legacy_used_off(qsize);
    cr_assert_eq(*(uint16_t *)vx_ptr(used_ring + VIRTQ_USED_IDX), 1,
                 "qsize %u: the used idx is not at base + %#lx", qsize,
                 (unsigned long)virtq_legacy_used_off(qsize));
    uint64_t buf;
    uint16_t rhead = vx_rx_post(1524, &buf);
    uint8_t sent[500];
    vx_peer_send(sizeof sent, 6, sent);
    cr_assert_eq(vx_used_idx(VX_RX), 1, "qsize %u: RX not delivered", qsize);
    struct virtq_used_elem e = vx_used_elem(VX_RX, 0);
    cr_assert(e.id == rhead && e.len == 10 + sizeof sent, "RX used {%u, %u}, want {%u, %zu}",
              e.id, e.len, rhead, 10 + sizeof sent);
    const uint8_t *b = vx_ptr(buf);
    static const uint8_t zero[10];
    cr_assert(!memcmp(b, zero, 10), "legacy RX header must be 10 zero bytes");
    cr_assert(!memcmp(b + 10, sent, sizeof sent), "qsize %u: RX frame bytes differ", qsize);
    cr_assert_eq(atomic_load(&vx.p.intx_level), 1, "legacy completions interrupt through INTx");
}

Test(vnet_legacy, fixed_queue_size_256) { legacy_round_trip(256); }
Test(vnet_legacy, fixed_queue_size_4096) { legacy_round_trip(4096); }
Test(vnet_legacy, fixed_queue_size_32768) { legacy_round_trip(32768); }

Test(vnet_legacy, mrg_rxbuf_uses_the_12_byte_header)
{
    vx_setup("legacy=1");
    vx_legacy_up((uint32_t)(VIRTIO_BIT(VIRTIO_NET_F_MAC) | VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF)));
    cr_assert_eq(vx.hdr_len, 12, "legacy header with MRG_RXBUF");
    uint64_t buf;
    vx_rx_post(1526, &buf);
    uint8_t sent[100];
    vx_peer_send(sizeof sent, 8, sent);
    cr_assert_eq(vx_used_elem(VX_RX, 0).len, 12 + sizeof sent, "RX length with a 12-byte header");
    const uint8_t *b = vx_ptr(buf);
    cr_assert_eq(b[10] | b[11] << 8, 1, "num_buffers");
    cr_assert(!memcmp(b + 12, sent, sizeof sent), "frame after a 12-byte header");
}

Test(vnet_legacy, bad_chain_stops_only_that_queue_until_reset)
{
    vx_setup("legacy=1:poll_us=0");
    vx_legacy_up((uint32_t)VIRTIO_BIT(VIRTIO_NET_F_MAC));
    vx_desc(VX_TX, 0, VX_TXBUF, 100, VIRTQ_DESC_F_NEXT, 0);    /* loops on itself */
    vx_publish(VX_TX, 0);
    vx_kick(VX_TX);
    struct virtio_net_stats s;
    VX_WAIT_STATS(s, s.queue_stopped == 1, "the TX queue was not stopped");
    cr_assert_eq(s.bad_chains, 1, "bad_chains %lu", (unsigned long)s.bad_chains);
    cr_assert_eq(s.needs_reset, 0, "legacy has no DEVICE_NEEDS_RESET");
    cr_assert_eq(vx_status() & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0, "legacy status gained 0x40");
    vx_rx_post(1524, NULL);
    vx_peer_send(64, 1, NULL);
    cr_assert_eq(vx_used_idx(VX_RX), 1, "the RX queue must keep working");
    uint8_t f[60] = { 0 };
    vx.q[VX_TX].next_desc = 1;
    vx_tx_post(f, sizeof f);
    vx_tx_kick_and_sync("TX on a stopped queue");
    cr_assert_eq(vx_used_idx(VX_TX), 0, "a stopped queue was processed");
    lg_wr(VIRTIO_LEGACY_STATUS, 1, 0);
    vx_legacy_up((uint32_t)VIRTIO_BIT(VIRTIO_NET_F_MAC));
    uint8_t mac[6];
    vx_dev_mac(mac);
    vx_frame(f, sizeof f, vx_peer_mac, mac, 1);
    vx_tx_post(f, sizeof f);
    vx_kick(VX_TX);
    vx_wait_peer(1, "legacy TX after reset");
}

Test(vnet_legacy, out_of_window_pfn_stops_the_queue)
{
    vx_setup("legacy=1");
    vx_legacy_up((uint32_t)VIRTIO_BIT(VIRTIO_NET_F_MAC));
    lg_wr(VIRTIO_LEGACY_QUEUE_SEL, 2, VX_RX);
    lg_wr(VIRTIO_LEGACY_QUEUE_PFN, 4, VX_OUTSIDE >> 12);
    vx_peer_send(64, 1, NULL);
    cr_assert_eq(vx_stats().queue_stopped, 1, "an RX ring outside the window must stop the queue");
    cr_assert_geq(vx_stats().dma_refusals, 1, "the refused ring map was not counted");
    lg_wr(VIRTIO_LEGACY_QUEUE_PFN, 4, 0);           /* PFN 0: the queue is reset */
    cr_assert_eq(lg_rd(VIRTIO_LEGACY_QUEUE_PFN, 4), 0, "PFN 0 reads back");
    vx_ring_init(VX_RX, 256);
    lg_wr(VIRTIO_LEGACY_QUEUE_PFN, 4, VX_RING(VX_RX) >> 12);
    vx_rx_post(1524, NULL);
    vx_peer_send(64, 2, NULL);
    cr_assert_eq(vx_used_idx(VX_RX), 1, "RX after the queue was set up again");
}

Test(vnet_legacy, isr_read_clears_and_lowers_intx)
{
    vx_setup("legacy=1");
    vx_legacy_up((uint32_t)(VIRTIO_BIT(VIRTIO_NET_F_MAC) | VIRTIO_BIT(VIRTIO_NET_F_STATUS)));
    vx_rx_post(1524, NULL);
    vx_peer_send(64, 1, NULL);
    cr_assert_eq(atomic_load(&vx.p.intx_level), 1, "INTx not asserted");
    virtio_net_set_link(vx.f, false);
    cr_assert_eq(lg_rd(VIRTIO_LEGACY_ISR, 1), VIRTIO_ISR_QUEUE | VIRTIO_ISR_CONFIG,
                 "ISR must hold both queue and config bits");
    cr_assert_eq(atomic_load(&vx.p.intx_level), 0, "ISR read must lower INTx");
    cr_assert_eq(lg_rd(VIRTIO_LEGACY_ISR, 1), 0, "ISR read must clear it");
    cr_assert_eq(lg_rd(VIRTIO_LEGACY_CONFIG + VIRTIO_NET_CFG_STATUS, 2), 0, "link down in config");
}

Test(vnet_legacy, wrong_width_or_offset_is_refused)
{
    vx_setup("legacy=1");
    struct { uint64_t off; uint32_t size; bool write; const char *what; } bad[] = {
        { VIRTIO_LEGACY_QUEUE_NUM, 4, false, "32-bit read of QUEUE_NUM" },
        { VIRTIO_LEGACY_QUEUE_PFN, 2, true, "16-bit write of QUEUE_PFN" },
        { VIRTIO_LEGACY_HOST_FEATURES, 4, true, "write of HOST_FEATURES" },
        { VIRTIO_LEGACY_QUEUE_NUM, 2, true, "write of QUEUE_NUM" },
        { VIRTIO_LEGACY_STATUS, 2, true, "16-bit write of STATUS" },
        { VIRTIO_LEGACY_ISR, 1, true, "ISR write" },
        { VIRTIO_LEGACY_QUEUE_NOTIFY, 4, true, "32-bit notify" },
        { VIRTIO_LEGACY_CONFIG + 6, 2, true, "write of the config status" },
        { VIRTIO_LEGACY_CONFIG, 2, true, "16-bit MAC write" },
        { VIRTIO_LEGACY_CONFIG + 8, 1, false, "read past the legacy config" },
        { VIRTIO_LEGACY_CONFIG + 1, 2, false, "misaligned config read" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 0;
        int before = atomic_load(&vx.p.refused);
        cr_assert_eq(vx_bar(VNET_BAR_LEGACY, bad[i].off, bad[i].size, bad[i].write, &v), BUS_OK,
                     "%s not handled", bad[i].what);
        cr_assert_eq(atomic_load(&vx.p.refused), before + 1, "%s was not refused", bad[i].what);
    }
    cr_assert_eq(vx_stats().bad_registers, sizeof bad / sizeof bad[0], "refusals not counted");
    cr_assert_eq(lg_rd(VIRTIO_LEGACY_QUEUE_NUM, 2), 256, "QUEUE_NUM changed by a refused write");
}

Test(vnet_legacy, notify_port_ioeventfd_attach_and_move)
{
    vx_setup("legacy=1:poll_us=0");
    vx.p.ioev_accept = true;
    vx_legacy_up((uint32_t)VIRTIO_BIT(VIRTIO_NET_F_MAC));
    uint64_t base = vx.f->bar[VNET_BAR_LEGACY].base;
    cr_assert_eq(vx.p.ioev_calls, 1, "one notify port for both queues, got %d calls", vx.p.ioev_calls);
    cr_assert(vx.p.ioev[0].pio && vx.p.ioev[0].assign && vx.p.ioev[0].len == 2 &&
              vx.p.ioev[0].addr == base + VIRTIO_LEGACY_QUEUE_NOTIFY,
              "legacy ioeventfd: pio %d assign %d len %u port %#lx", vx.p.ioev[0].pio,
              vx.p.ioev[0].assign, vx.p.ioev[0].len, (unsigned long)vx.p.ioev[0].addr);
    uint8_t f[60], mac[6];
    vx_dev_mac(mac);
    vx_frame(f, sizeof f, vx_peer_mac, mac, 2);
    vx_tx_post(f, sizeof f);
    uint64_t one = 1;
    cr_assert_eq(write(vx.p.ioev[0].fd, &one, sizeof one), (ssize_t)sizeof one, "eventfd write");
    vx_wait_peer(1, "legacy TX woken through the PIO ioeventfd");
    uint64_t nb = base + 0x100;
    cr_assert(pci_cfg_write(vx.f, PCI_BAR_REG(0), 4, (uint32_t)nb | PCI_BAR_IO),
              "moving BAR0 refused: %s", vx.p.last_refused);
    cr_assert_eq(vx.p.ioev_calls, 3, "a move detaches and attaches");
    cr_assert(!vx.p.ioev[1].assign && vx.p.ioev[1].addr == base + VIRTIO_LEGACY_QUEUE_NOTIFY &&
              vx.p.ioev[2].assign && vx.p.ioev[2].addr == nb + VIRTIO_LEGACY_QUEUE_NOTIFY &&
              vx.p.ioev[2].pio, "the ioeventfd did not follow the BAR");
}

/* ---- both shapes ------------------------------------------------------- */

Test(vnet_common, bad_options_are_refused_with_a_sentence)
{
    vx_setup("");
    struct { const char *opts; const char *says; } bad[] = {
        { "qsize=3", "power of two" },
        { "qsize=65536", "qsize" },
        { "legacy=2", "legacy" },
        { "mac=zz-54-00-12-34-56", "unicast MAC" },
        { "mac=01-00-5e-00-00-01", "unicast MAC" },
        { "mac=000000000000", "unicast MAC" },
        { "link=sideways", "up or down" },
        { "poll_us=2000000", "poll_us" },
        { "colour=red", "unknown option 'colour'" },
    };
    char err[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        cr_assert(!virtio_net_create(&vx.bus, "bad", VX_GSI, bad[i].opts, err, sizeof err),
                  "options '%s' were accepted", bad[i].opts);
        cr_assert(strstr(err, bad[i].says), "options '%s': error '%s' does not say '%s'",
                  bad[i].opts, err, bad[i].says);
    }
    err[0] = '\0';
    cr_assert(!virtio_net_create(&vx.bus, "net0", VX_GSI, "", err, sizeof err),
              "a second net0 in the same domain was accepted");
    cr_assert(strstr(err, "switch"), "name clash error '%s' does not mention the switch", err);
    cr_assert_null(vx.bus.slot[2], "a refused device took a PCI slot");
    cr_assert(virtio_net_create(&vx.bus, "net1", VX_GSI, "mac=525400123456", err, sizeof err),
              "a plain-hex MAC was refused: %s", err);
    uint8_t mac[6];
    cr_assert(virtio_net_mac(vx.bus.slot[2], mac));
    cr_assert(mac[0] == 0x52 && mac[3] == 0x12 && mac[5] == 0x56, "mac option not applied");
}

Test(vnet_common, default_mac_is_local_and_stable)
{
    vx_setup("");
    uint8_t a[6], b[6];
    vx_dev_mac(a);
    cr_assert(a[0] == 0x52 && a[1] == 0x54 && a[2] == 0x00, "default MAC prefix %02x:%02x:%02x",
              a[0], a[1], a[2]);
    for (unsigned i = 0; i < 6; i++)
        cr_assert_eq(vx_rd(VNET_BAR_MODERN, VNET_DEVICE_OFF + i, 1), a[i], "config MAC byte %u", i);
    char err[256];
    cr_assert(virtio_net_create(&vx.bus, "net1", VX_GSI, "", err, sizeof err), "%s", err);
    cr_assert(virtio_net_mac(vx.bus.slot[2], b));
    cr_assert(memcmp(a, b, 6), "two devices got the same default MAC");
    struct virtio_net_stats s;
    cr_assert_not(virtio_net_stats_get(&vx.bus.host_bridge, &s), "stats of the host bridge");
    cr_assert_not(virtio_net_set_link(&vx.bus.host_bridge, true), "link of the host bridge");
}

Test(vnet_common, link_state_follows_option_and_set_link)
{
    vx_setup("link=down");
    vx_modern_up(VX_MODERN_FEATURES | VIRTIO_BIT(VIRTIO_NET_F_STATUS), 64);
    cr_assert_eq(vx_cfg16(VIRTIO_NET_CFG_STATUS), 0, "link=down: config status");
    vx_rx_post(1526, NULL);
    vx_peer_send(64, 1, NULL);
    cr_assert_eq(vx_used_idx(VX_RX), 0, "a frame reached a device whose link is down");
    uint8_t gen = (uint8_t)cm_rd(VIRTIO_COMMON_CFGGEN, 1);
    cr_assert(virtio_net_set_link(vx.f, true));
    cr_assert_eq(vx_cfg16(VIRTIO_NET_CFG_STATUS), VIRTIO_NET_S_LINK_UP, "link up in config");
    cr_assert_eq((uint8_t)cm_rd(VIRTIO_COMMON_CFGGEN, 1), (uint8_t)(gen + 1), "generation");
    cr_assert_eq(vx_isr(), VIRTIO_ISR_CONFIG, "STATUS negotiated: a config interrupt is due");
    vx_peer_send(64, 2, NULL);
    cr_assert_eq(vx_used_idx(VX_RX), 1, "link up: the frame must arrive");
    cr_assert(virtio_net_set_link(vx.f, true));
    cr_assert_eq((uint8_t)cm_rd(VIRTIO_COMMON_CFGGEN, 1), (uint8_t)(gen + 1),
                 "no change, no new generation");
}

Test(vnet_common, link_change_without_status_feature_sends_no_interrupt)
{
    vx_setup("");
    vx_modern_up(VX_MODERN_FEATURES, 64);
    virtio_net_set_link(vx.f, false);
    cr_assert_eq(atomic_load(&vx.p.intx_level), 0, "config interrupt without STATUS negotiated");
    cr_assert_eq(vx_stats().config_irqs, 0, "config interrupt counted without STATUS");
}

Test(vnet_common, tx_burst_of_many_frames_in_order)
{
    vx_setup("");
    vx_modern_up(VX_MODERN_FEATURES | VIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX), 256);
    uint8_t mac[6];
    vx_dev_mac(mac);
    /* 300 frames through a 256-entry ring: the driver reaps as it goes. */
    for (int i = 0; i < 300; i++) {
        uint8_t f[64];
        vx_frame(f, sizeof f, vx_peer_mac, mac, (uint8_t)i);
        while ((uint16_t)(vx.q[VX_TX].avail_idx - vx_used_idx(VX_TX)) > 120)
            sched_yield();      /* the worker is polling: room frees up */
        vx_tx_post(f, sizeof f);
        vx_kick(VX_TX);
    }
    vx_wait_peer(300, "300-frame burst");
    vx_wait_used(VX_TX, 300, "300 completions");
    pthread_mutex_lock(&vx.peer_mu);
    cr_assert_eq(vx.peer_frame[ETH_HDR_LEN], (uint8_t)(299 + ETH_HDR_LEN),
                 "the last frame received is not the last one sent");
    pthread_mutex_unlock(&vx.peer_mu);
    cr_assert_eq(vx_stats().tx_frames, 300, "tx_frames");
}
