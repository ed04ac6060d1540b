// SPDX-License-Identifier: GPL-2.0
//
// Lesson 4, part fentry: lesson 1's greeting from an fentry program on the function
// behind clone(2). The target is named when the program is loaded, and the kernel finds
// it in its own BTF (/sys/kernel/btf/vmlinux): fentry needs BTF, and 5.5 or newer.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

// The context of an fentry program is the target's arguments, as an array of u64; this
// one reads none of them.
SEC("fentry")
int hello_fentry(void *ctx)
{
	char fmt[] = "Hello World!! (fentry) pid %d\n";
	__u32 pid = bpf_get_current_pid_tgid() >> 32;

	bpf_trace_printk(fmt, sizeof(fmt), pid);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
