// SPDX-License-Identifier: GPL-2.0
//
// Lesson 6, part per-cpu-array: the array part's count, in a per-CPU array (4.6+). Each
// CPU has its own copy of every slot; a lookup returns this CPU's, which no other CPU
// touches, so a plain addition is enough. User space reads one value per CPU and adds
// them up.
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} by_size_per_cpu SEC(".maps");

// int tcp_sendmsg(struct sock *sk, struct msghdr *msg, size_t size)
SEC("kprobe")
int BPF_KPROBE(count_per_cpu, void *sk, void *msg, __u64 size)
{
	__u32 slot = size > 0xffffffff ? 0xffffffff : size;
	__u64 *count = bpf_map_lookup_elem(&by_size_per_cpu, &slot);

	// The program cannot be moved to another CPU while it runs: this CPU's copy is its own.
	if (count)
		*count += 1;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
