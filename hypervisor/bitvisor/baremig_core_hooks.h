/*
 * What the binding needs from BitVisor's core that BitVisor does not offer as
 * a driver API today: EPT write tracking, stopping and starting the guest's
 * vCPUs, and reading/writing their VMCS guest state. A small core patch
 * provides these (see README.md); they are the only symbols the binding
 * expects beyond BitVisor's own driver APIs.
 */
#ifndef BAREMIG_CORE_HOOKS_H
#define BAREMIG_CORE_HOOKS_H
#include <core/types.h>
#include "../hal.h"
/* EPT: clear the write bit of every guest RAM page; on a write fault set the bit in the log and make the page writable again. */
void baremig_core_track_enable(int on);
/* OR the logged pages into out (one bit per 4 KiB page) and clear the log. */
void baremig_core_track_collect(u8 *out, u64 pages);
/* Stop every vCPU at its next VM exit (IPI), and keep it in VMX root until resumed. */
int baremig_core_pause(void);
void baremig_core_resume(void);
/* VMCS guest-state area plus XSAVE of the (single) guest vCPU. */
void baremig_core_vcpu_get(struct bm_vcpu *v);
void baremig_core_vcpu_set(const struct bm_vcpu *v);
/* Guest RAM size as the memory map (E820) gave it to the guest. */
u64 baremig_core_ram_bytes(void);

/* The other direction: provided by the binding, called by the core patch for
 * every interrupt acknowledge it performs for the guest (poll words of the
 * master and, after a cascade acknowledge, of the slave), so that the 8259
 * shadow follows the in-service register and rotation. */
void baremig_observe_inta(u8 master, int has_slave, u8 slave);
#endif
