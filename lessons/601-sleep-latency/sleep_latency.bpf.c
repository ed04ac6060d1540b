// SPDX-License-Identifier: GPL-2.0
//
// Exercise 6.1, kernel side: how long the function behind nanosleep(2) takes, in
// power-of-two buckets of microseconds, as BCC's funclatency counts it. The maps and the
// helpers are here; the two programs are yours to fill in. Run it with
// `cargo run -- lesson 601`.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

// Thread id → when it entered (ns since boot).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} entered SEC(".maps");

// Bucket b counts the calls that took 2^b to 2^(b+1) - 1 µs (bucket 0: 0 and 1).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} usecs_log2 SEC(".maps");

// [0]: the thread whose calls are timed, written by user space.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} watched SEC(".maps");

// floor(log2(v)) without a loop, as lesson 6's histogram.bpf.c computes it.
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

// The calling thread, if it is the one watched.
static __always_inline int watched_thread(__u32 *tid)
{
	__u32 zero = 0;
	__u64 *target = bpf_map_lookup_elem(&watched, &zero);

	*tid = (__u32)bpf_get_current_pid_tgid();
	return target && *target == *tid;
}

SEC("kprobe")
int sleep_enter(void *ctx)
{
	__u32 tid = 0;

	if (!watched_thread(&tid))
		return 0;
	// EXERCISE 6.1: note when this thread entered: bpf_ktime_get_ns(), stored in
	// `entered` under `tid` (bpf_map_update_elem).
	return 0;
}

SEC("kretprobe")
int sleep_return(void *ctx)
{
	__u32 tid = 0;

	if (!watched_thread(&tid))
		return 0;
	// EXERCISE 6.1: find when this thread entered (a lookup in `entered` can fail: the
	// kprobe may have been attached after it entered), take the time since in µs, add
	// one to its bucket in `usecs_log2` (log2_u64 of the µs) and delete the entry.
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
