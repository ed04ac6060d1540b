// SPDX-License-Identifier: GPL-2.0
//
// Exercise 1.1, solved: like lesson 1, but say who called clone.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("kprobe")
int hello_comm(void *ctx)
{
	char fmt[] = "Hello World!! from %s, pid %d\n";
	// Zeroed, though the helper overwrites it: 4.4's verifier lets a helper write only to
	// stack memory that is already initialised ("invalid indirect read from stack").
	char comm[16] = {};

	// The calling task's name (its "comm", 16 bytes at most) and its process id: the
	// upper 32 bits of pid_tgid (the lower ones are the thread id).
	bpf_get_current_comm(comm, sizeof(comm));
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	bpf_trace_printk(fmt, sizeof(fmt), comm, pid);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
