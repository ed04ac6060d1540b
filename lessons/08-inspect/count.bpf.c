// SPDX-License-Identifier: GPL-2.0
//
// Lesson 8, kernel side: count the calls of getppid(2) in a one-slot array map. Small on
// purpose: the lesson is what bpftool shows of it once it is loaded and attached.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

// One slot, key 0: how many times the probed function ran. Declared with BTF (the
// `.maps` section), so bpftool can print the key and value by their types.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} calls SEC(".maps");

SEC("kprobe")
int count_calls(void *ctx)
{
	__u32 key = 0;
	__u64 *count = bpf_map_lookup_elem(&calls, &key);

	if (count)
		__sync_fetch_and_add(count, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
