// SPDX-License-Identifier: GPL-2.0
//
// Mistake 91: an old tutorial's probe target. Every fork once went through _do_fork();
// in 5.10 it was renamed kernel_clone(), so on newer kernels there is nothing to attach to.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("kprobe")
int on_fork(void *ctx)
{
	char msg[] = "a process is forking\n";

	bpf_trace_printk(msg, sizeof(msg));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
