// SPDX-License-Identifier: GPL-2.0
//
// Exercise 2.1, kernel side: lesson 2's counter, to be changed so that it counts each
// thread's tcp_sendmsg() calls separately. Run it with `cargo run -- lesson 201`.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	// EXERCISE 2.1: a hash map holds at most max_entries keys; an update that would
	// add one more fails (and the program goes on without it). One per thread needs
	// more than 1.
	__uint(max_entries, 1);
	// Keep the key a __u32 (the check reads the map as u32 → u64).
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

SEC("kprobe")
int count_sendmsg(void *ctx)
{
	// EXERCISE 2.1: key the count by the calling thread instead of 0. The thread id is
	// the lower 32 bits of bpf_get_current_pid_tgid() (the upper 32 are the process's).
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
