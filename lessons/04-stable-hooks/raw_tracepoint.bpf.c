// SPDX-License-Identifier: GPL-2.0
//
// Lesson 4, part raw-tracepoint: lesson 1's greeting from the raw sys_enter tracepoint.
// sys_enter fires for every system call, with the raw arguments of the tracepoint:
// args[0] is the caller's struct pt_regs *, args[1] the system call's number. The
// program keeps only clone, whose number depends on the architecture.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#if defined(__TARGET_ARCH_x86)
#define NR_CLONE 56
#elif defined(__TARGET_ARCH_arm64)
#define NR_CLONE 220
#else
#error "clone's system call number is not known for this architecture"
#endif

SEC("raw_tracepoint")
int hello_raw_tp(struct bpf_raw_tracepoint_args *ctx)
{
	char fmt[] = "Hello World!! (raw tracepoint) pid %d\n";

	if (ctx->args[1] != NR_CLONE)
		return 0;
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	bpf_trace_printk(fmt, sizeof(fmt), pid);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
