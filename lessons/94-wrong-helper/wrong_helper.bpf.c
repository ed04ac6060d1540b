// SPDX-License-Identifier: GPL-2.0
//
// Mistake 94: this program is rejected by the verifier. Can you see why before running it?
//
// Each program type may call only the helpers that make sense for its context.
// bpf_skb_load_bytes() copies bytes out of a packet (a socket buffer): it is for socket
// filters, tc and other networking programs, whose context is a packet. A kprobe's
// context is the probed function's registers, with no packet in sight, so the verifier
// refuses the call: "unknown func bpf_skb_load_bytes#26" — not unknown to the kernel,
// unknown for this program type. (Some newer kernels say "program of this type cannot
// use helper" for a few helpers.)
//
// The fix: read kernel memory from a kprobe with bpf_probe_read_kernel() (5.5+;
// bpf_probe_read() before), or move the packet work to a socket filter.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("kprobe")
int peek_packet(void *ctx)
{
	char first[4] = {};

	bpf_skb_load_bytes(ctx, 0, first, sizeof(first));
	return first[0];
}

char LICENSE[] SEC("license") = "GPL";
