// SPDX-License-Identifier: GPL-2.0
//
// Exercise 5.1, kernel side: lesson 5's ring buffer program, to be changed so that only
// the events of messages with an even size reach user space. Run it with
// `cargo run -- lesson 501`.
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

// Lesson 5's struct event (event.h): keep it as it is, the user side reads it.
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
	// EXERCISE 5.1: send only the events of messages whose size is even. Either return
	// before reserving when `size` is odd, or reserve, fill the event in, and give the
	// room back with bpf_ringbuf_discard(e, 0) instead of submitting it: the way to go
	// when what decides is only known once the record is written.
	struct event *e = bpf_ringbuf_reserve(&ring_events, sizeof(*e), 0);

	if (!e)
		return 0;
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->size = size;
	e->ts_ns = bpf_ktime_get_ns();
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
