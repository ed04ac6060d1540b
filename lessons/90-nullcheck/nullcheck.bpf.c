// SPDX-License-Identifier: GPL-2.0
//
// Mistake 90: this program is rejected by the verifier. Can you see why before running it?
//
// bpf_map_lookup_elem() returns NULL when the key is not in the map. The verifier tracks
// that: until the program has checked the pointer, it is "map_value_or_null", and using
// it is refused, because a NULL dereference would crash the kernel.
//
// The fix: check before use, `if (!count) return 0;` (lesson 2's counter.bpf.c does).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

SEC("kprobe")
int count_sendmsg(void *ctx)
{
	__u32 key = 0;
	__u64 *count = bpf_map_lookup_elem(&stats, &key);

	__sync_fetch_and_add(count, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
