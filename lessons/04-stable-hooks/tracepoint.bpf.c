// SPDX-License-Identifier: GPL-2.0
//
// Lesson 4, part tracepoint: lesson 1's greeting from the syscalls:sys_enter_clone
// tracepoint. Its name and the layout of its arguments are part of the kernel's tracing
// interface (events/syscalls/sys_enter_clone/format), not of its internals.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("tracepoint")
int hello_tp(void *ctx)
{
	char fmt[] = "Hello World!! (tracepoint) pid %d\n";
	// The process that called clone: the upper 32 bits of pid_tgid.
	__u32 pid = bpf_get_current_pid_tgid() >> 32;

	bpf_trace_printk(fmt, sizeof(fmt), pid);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
