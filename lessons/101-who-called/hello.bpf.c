// SPDX-License-Identifier: GPL-2.0
//
// Exercise 1.1, kernel side: lesson 1's greeting, to be changed so that it says who
// called clone(2). Run it with `cargo run -- lesson 101`.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("kprobe")
int hello(void *ctx)
{
	// EXERCISE 1.1: make the message name the calling task and its process id.
	// - bpf_get_current_comm(buf, size) copies the task's name ("comm", 16 bytes at
	//   most) into a char array on the stack. Zero the array first (= {}): 4.4's
	//   verifier lets a helper write only to stack memory that is already initialised.
	// - bpf_get_current_pid_tgid() returns the thread group id (what user space calls
	//   the pid) in its upper 32 bits and the thread id in its lower 32.
	// - bpf_trace_printk(fmt, sizeof(fmt), ...) takes up to three values after the
	//   format: %s for a string on the stack, %d for a number.
	char msg[] = "Hello World!!\n";

	bpf_trace_printk(msg, sizeof(msg));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
