// SPDX-License-Identifier: GPL-2.0
//
// Lesson 2a, kernel side: count every call of tcp_sendmsg() in a map.
//
// A map is memory the kernel keeps for BPF programs, shared with user space. Here it is
// a hash map with a single entry (key 0) holding the count; user space reads it.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

// BCC writes this as BPF_HASH(stats, u32). The struct below is how libbpf-style C
// declares a map: type, size, key and value types, placed in the ".maps" section.
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
	__u64 zero = 0;

	// Look the counter up; on the first call there is none yet, so create it at 0
	// (BCC's lookup_or_init). The verifier insists on the NULL check: a lookup can fail.
	__u64 *count = bpf_map_lookup_elem(&stats, &key);
	if (!count) {
		bpf_map_update_elem(&stats, &key, &zero, BPF_NOEXIST);
		count = bpf_map_lookup_elem(&stats, &key);
		if (!count)
			return 0;
	}
	// Atomic, because the probe can run on several CPUs at once.
	__sync_fetch_and_add(count, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
