// SPDX-License-Identifier: GPL-2.0
//
// Lesson 5, part perf-buffer: one event per tcp_sendmsg() call, through a perf event
// array, as lesson 2's latency part sends its samples. Each CPU has a buffer of its own;
// bpf_perf_event_output() copies the event from the program's stack into the buffer of
// the CPU it runs on.
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "event.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} perf_events SEC(".maps");

// int tcp_sendmsg(struct sock *sk, struct msghdr *msg, size_t size)
SEC("kprobe")
int BPF_KPROBE(perf_on_sendmsg, void *sk, void *msg, __u64 size)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct event e;

	// Zeroed first: kernels before 6.3 refuse to pass a helper memory with
	// uninitialised bytes (the book's "When it breaks" says which).
	__builtin_memset(&e, 0, sizeof(e));
	e.pid = id >> 32;
	e.tid = (__u32)id;
	e.size = size;
	e.ts_ns = bpf_ktime_get_ns();
	// A full buffer refuses the event (-ENOSPC) and the kernel counts it as lost; user
	// space hears of the loss later, from the kernel, not from this program.
	// (BPF_F_CURRENT_CPU says "this CPU" since 4.8; 4.4 takes only the index.)
	bpf_perf_event_output(ctx, &perf_events, bpf_get_smp_processor_id(), &e, sizeof(e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
