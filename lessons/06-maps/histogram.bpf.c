// SPDX-License-Identifier: GPL-2.0
//
// Lesson 6, part histogram: message sizes in power-of-two buckets, as BCC's bitesize and
// funclatency keep them. Bucket b counts the sizes whose floor(log2) is b: 2^b to
// 2^(b+1) - 1. The kernel keeps 64 counters; user space prints the histogram.
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} size_log2 SEC(".maps");

// floor(log2(v)), 0 for 0, without a loop: kernels before 5.3 refuse any loop (BCC's
// bpf_log2, and libbpf-tools' log2).
static __always_inline __u32 log2_u32(__u32 v)
{
	__u32 r, shift;

	r = (v > 0xFFFF) << 4;
	v >>= r;
	shift = (v > 0xFF) << 3;
	v >>= shift;
	r |= shift;
	shift = (v > 0xF) << 2;
	v >>= shift;
	r |= shift;
	shift = (v > 0x3) << 1;
	v >>= shift;
	r |= shift;
	r |= (v >> 1);
	return r;
}

static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 hi = v >> 32;

	return hi ? log2_u32(hi) + 32 : log2_u32(v);
}

// int tcp_sendmsg(struct sock *sk, struct msghdr *msg, size_t size)
SEC("kprobe")
int BPF_KPROBE(size_histogram, void *sk, void *msg, __u64 size)
{
	__u32 bucket = log2_u64(size);
	__u64 *count = bpf_map_lookup_elem(&size_log2, &bucket);

	if (count)
		__sync_fetch_and_add(count, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
