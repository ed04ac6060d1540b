// SPDX-License-Identifier: GPL-2.0
//
// Mistake 92: this program is rejected by the verifier. Can you see why before running it?
//
// A histogram of message sizes: the map's value holds four buckets of 1 KiB each, and the
// program adds one to the bucket of each message tcp_sendmsg() is asked to send. But the
// size is whatever the caller passed: nothing here keeps `size / 1024` below 4, so
// `buckets[size / 1024]` could be anywhere in kernel memory. The verifier refuses any
// access it cannot prove stays inside the value.
//
// The fix: clamp the index first, `if (bucket >= BUCKETS) bucket = BUCKETS - 1;`, and the
// same access is accepted.
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define BUCKETS 4

struct histogram {
	__u64 buckets[BUCKETS];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct histogram);
} sizes SEC(".maps");

SEC("kprobe")
int BPF_KPROBE(count_sizes, void *sk, void *msg, __u64 size)
{
	__u32 key = 0;
	__u64 bucket = size / 1024;
	struct histogram *h = bpf_map_lookup_elem(&sizes, &key);

	if (!h)
		return 0;
	__sync_fetch_and_add(&h->buckets[bucket], 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
