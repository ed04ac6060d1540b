// SPDX-License-Identifier: GPL-2.0
//
// Exercise 5.1, solved: lesson 5's ring buffer program, sending only the events of
// messages whose size is even. This one decides after filling the record in, the way a
// program must when what it keeps depends on what it read: bpf_ringbuf_discard() gives
// the reserved room back, and user space never sees the record.
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

// Lesson 5's struct event (event.h), which the user side reads.
struct event {
	__u32 pid;
	__u32 tid;
	__u64 size;
	__u64 ts_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} ring_events SEC(".maps");

// int tcp_sendmsg(struct sock *sk, struct msghdr *msg, size_t size)
SEC("kprobe")
int BPF_KPROBE(ring_on_sendmsg, void *sk, void *msg, __u64 size)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct event *e = bpf_ringbuf_reserve(&ring_events, sizeof(*e), 0);

	if (!e)
		return 0;
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->size = size;
	e->ts_ns = bpf_ktime_get_ns();
	if (e->size % 2) {
		bpf_ringbuf_discard(e, 0);
		return 0;
	}
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
