// SPDX-License-Identifier: GPL-2.0
//
// Exercise 6.1, solved: how long the function behind nanosleep(2) takes, in power-of-two
// buckets of microseconds, as BCC's funclatency counts it. A kprobe notes when a thread
// enters; a kretprobe, when it returns, adds the time between to the histogram.
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
	__u64 now = bpf_ktime_get_ns();

	if (watched_thread(&tid))
		bpf_map_update_elem(&entered, &tid, &now, BPF_ANY);
	return 0;
}

SEC("kretprobe")
int sleep_return(void *ctx)
{
	__u32 tid = 0;
	__u64 *start, *count;

	if (!watched_thread(&tid))
		return 0;
	start = bpf_map_lookup_elem(&entered, &tid);
	if (!start)
		return 0; // entered before the kprobe was attached
	__u32 bucket = log2_u64((bpf_ktime_get_ns() - *start) / 1000);
	bpf_map_delete_elem(&entered, &tid);
	count = bpf_map_lookup_elem(&usecs_log2, &bucket);
	if (count)
		__sync_fetch_and_add(count, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
