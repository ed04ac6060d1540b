// SPDX-License-Identifier: GPL-2.0
//
// Mistake 96: this program is rejected by the verifier. Can you see why before running it?
//
// A kprobe program's context is `struct pt_regs`, the registers of the probed function:
// 168 bytes on x86-64, 272 on arm64. Reading the context directly is allowed, but only
// inside it. The 64th u64 (bytes 512 to 519) is past its end on both, and the verifier
// knows the context's size for each program type: "invalid bpf_context access".
//
// The fix: read registers with the PT_REGS_*() macros of bpf_tracing.h, which know where
// each register is on each arch, and read memory that is not the context with
// bpf_probe_read_kernel().
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("kprobe")
int read_registers(void *ctx)
{
	__u64 *regs = ctx;

	return regs[64] != 0;
}

char LICENSE[] SEC("license") = "GPL";
