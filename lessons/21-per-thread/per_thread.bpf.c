// SPDX-License-Identifier: GPL-2.0
//
// Exercise 2.1, solved: lesson 2's counter, keyed by the calling thread instead of 0.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);	// thread id: the lower half of pid_tgid
	__type(value, __u64);	// tcp_sendmsg calls
} sends SEC(".maps");

SEC("kprobe")
int count_per_thread(void *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 one = 1;
	__u64 *count = bpf_map_lookup_elem(&sends, &tid);

	if (count)
		__sync_fetch_and_add(count, 1);
	else
		bpf_map_update_elem(&sends, &tid, &one, BPF_NOEXIST);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
