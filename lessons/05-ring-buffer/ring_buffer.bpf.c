// SPDX-License-Identifier: GPL-2.0
//
// Lesson 5, part ring-buffer: the same events through the BPF ring buffer (5.8+). One
// buffer serves every CPU. The program reserves room for an event in the buffer itself,
// fills it in place and submits it: no copy from the stack. A full buffer makes the
// reservation fail, and only the program knows: it counts those in `dropped`.
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "event.h"

// max_entries is the size in bytes: a power of two and a multiple of the page size.
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} ring_events SEC(".maps");

// Reservations that failed because the buffer was full.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} dropped SEC(".maps");

// int tcp_sendmsg(struct sock *sk, struct msghdr *msg, size_t size)
SEC("kprobe")
int BPF_KPROBE(ring_on_sendmsg, void *sk, void *msg, __u64 size)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct event *e = bpf_ringbuf_reserve(&ring_events, sizeof(*e), 0);

	if (!e) {
		__u32 key = 0;
		__u64 *count = bpf_map_lookup_elem(&dropped, &key);

		if (count)
			__sync_fetch_and_add(count, 1);
		return 0;
	}
	// Reserved memory is the buffer's, not the stack's: every field is written before
	// submit, or user space would read what an earlier event left there.
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->size = size;
	e->ts_ns = bpf_ktime_get_ns();
	// The verifier insists: every reservation is submitted or discarded, on every path.
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
