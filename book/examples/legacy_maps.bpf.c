// SPDX-License-Identifier: GPL-2.0
//
// Lesson 2's counter as older code declared its map: a `struct bpf_map_def` in a section
// named "maps", as the kernel's samples/bpf and libbpf before 1.0 did. The map is only
// sizes, with no types: the loader learns nothing of what a key or a value is. Not a
// lesson; book/capture.sh compiles it, with the lessons' flags, to show its sections in
// the book beside a lesson's (`.maps`, where the map is described in BTF).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

// libbpf's bpf_helpers.h no longer has this struct (libbpf 1.0 stopped loading "maps"
// sections); the layout is the one aya-obj and the kernel's samples read.
struct bpf_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

struct bpf_map_def SEC("maps") stats = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 1,
};

SEC("kprobe")
int count_sendmsg(void *ctx)
{
	__u32 key = 0;
	__u64 zero = 0;
	__u64 *count = bpf_map_lookup_elem(&stats, &key);

	if (!count) {
		bpf_map_update_elem(&stats, &key, &zero, BPF_NOEXIST);
		count = bpf_map_lookup_elem(&stats, &key);
		if (!count)
			return 0;
	}
	__sync_fetch_and_add(count, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
