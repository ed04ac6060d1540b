// SPDX-License-Identifier: GPL-2.0
//
// Mistake 93: this program is rejected by the verifier. Can you see why before running it?
//
// The loop is meant to count up to the size tcp_sendmsg() was asked to send, but `i` is
// never incremented: once entered, it never ends. A BPF program must finish, so the
// verifier proves every loop ends. Before 5.3 it refuses any backward jump ("back-edge");
// from 5.3 it follows bounded loops, finds this one back where it started with nothing
// changed, and stops: "infinite loop detected".
//
// The fix: `i++` in the loop, and a bound the verifier can see (`i < size && i < 64`).
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} bytes SEC(".maps");

SEC("kprobe")
int BPF_KPROBE(count_bytes, void *sk, void *msg, __u64 size)
{
	__u32 key = 0;
	__u64 *total = bpf_map_lookup_elem(&bytes, &key);
	__u64 i = 0;

	if (!total)
		return 0;
	while (i < size)
		__sync_fetch_and_add(total, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
