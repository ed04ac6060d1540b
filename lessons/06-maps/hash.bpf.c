// SPDX-License-Identifier: GPL-2.0
//
// Lesson 6, part hash: count messages by size in a hash map of 16 entries. A key exists
// once it is inserted; when all 16 are taken, the map refuses new ones (-E2BIG).
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "count_by_size.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u64);
	__type(value, __u64);
} sizes_hash SEC(".maps");

// int tcp_sendmsg(struct sock *sk, struct msghdr *msg, size_t size)
SEC("kprobe")
int BPF_KPROBE(count_in_hash, void *sk, void *msg, __u64 size)
{
	count_by_size(&sizes_hash, size);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
