// SPDX-License-Identifier: GPL-2.0
//
// Lesson 6, part lru-hash: the hash part's program on an LRU hash of 16 entries (4.10+).
// When it is full, an insert succeeds anyway: the map makes room by evicting keys that
// were not used lately. A lookup from a program marks its key as used.
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "count_by_size.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16);
	__type(key, __u64);
	__type(value, __u64);
} sizes_lru SEC(".maps");

// int tcp_sendmsg(struct sock *sk, struct msghdr *msg, size_t size)
SEC("kprobe")
int BPF_KPROBE(count_in_lru, void *sk, void *msg, __u64 size)
{
	count_by_size(&sizes_lru, size);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
