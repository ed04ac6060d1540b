// SPDX-License-Identifier: GPL-2.0
//
// Lesson 7, kernel side: count the kernel stacks a function is called from, as BCC's
// stackcount does. tracex4 (lesson 3) kept one address per allocation, the caller's;
// bpf_get_stackid() (4.6+) keeps the whole chain of calls that led here, in a stack
// trace map, and returns an id for it: the same stack gets the same id.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

// PERF_MAX_STACK_DEPTH: the deepest stack the kernel records.
#define MAX_DEPTH 127

// Stack id → the stack's return addresses, innermost first (zeros after the last).
struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 1024);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, MAX_DEPTH * sizeof(__u64));
} stacks SEC(".maps");

// Stack id → how many calls came from that stack.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

// [0]: the thread whose calls are counted, written by user space (0: none). [1]: calls
// whose stack could not be recorded.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} control SEC(".maps");

SEC("kprobe")
int count_stack(void *ctx)
{
	__u32 watched = 0, failed = 1;
	__u64 *tid = bpf_map_lookup_elem(&control, &watched);
	__u64 one = 1;

	if (!tid || *tid != (__u32)bpf_get_current_pid_tgid())
		return 0;
	// Flags 0: the kernel stack, from the probed function out. Negative when the stack
	// cannot be stored (the map is full, or another stack holds its hash: -EEXIST).
	long id = bpf_get_stackid(ctx, &stacks, 0);
	if (id < 0) {
		__u64 *lost = bpf_map_lookup_elem(&control, &failed);

		if (lost)
			__sync_fetch_and_add(lost, 1);
		return 0;
	}
	__u32 key = id;
	__u64 *count = bpf_map_lookup_elem(&counts, &key);
	if (count)
		__sync_fetch_and_add(count, 1);
	else
		bpf_map_update_elem(&counts, &key, &one, BPF_NOEXIST);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
