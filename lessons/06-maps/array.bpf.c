// SPDX-License-Identifier: GPL-2.0
//
// Lesson 6, parts array and pinning: count tcp_sendmsg() calls by message size in an
// array. An array's slots exist from the moment it is created, zeroed: slot i is simply
// element i, and a lookup only fails for an index past its end.
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

// Slot i counts the messages of i bytes.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} by_size SEC(".maps");

// int tcp_sendmsg(struct sock *sk, struct msghdr *msg, size_t size)
SEC("kprobe")
int BPF_KPROBE(count_in_array, void *sk, void *msg, __u64 size)
{
	__u32 slot = size > 0xffffffff ? 0xffffffff : size;
	__u64 *count = bpf_map_lookup_elem(&by_size, &slot);

	// NULL for a slot past the end: a message of 8 bytes or more is not counted.
	if (count)
		// Shared by every CPU: the addition must be atomic.
		__sync_fetch_and_add(count, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
