// SPDX-License-Identifier: GPL-2.0
//
// Lesson 1, kernel side: say "Hello World!!" every time a process calls clone(2).
//
// This function runs inside the kernel. It is compiled to eBPF bytecode by clang
// (-target bpf), checked by the kernel's verifier when it is loaded, turned into native
// code by the JIT, and then run each time the probed kernel function is entered.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

// SEC() names the ELF section the function goes into; "kprobe" tells the loader (aya, on
// the user side) what kind of program this is. Which kernel function it is attached to is
// decided at run time, because that name differs between kernels.
SEC("kprobe")
int hello(void *ctx)
{
	// The message lives on the BPF stack. Kernels before 5.2 cannot read string
	// constants from a program's read-only data, so this works everywhere.
	char msg[] = "Hello World!!\n";

	// Writes one line to the kernel's trace buffer, which user space reads from
	// /sys/kernel/tracing/trace_pipe. Debugging aid only: slow, and shared by everyone.
	bpf_trace_printk(msg, sizeof(msg));
	return 0;
}

// bpf_trace_printk is only offered to programs that declare a GPL-compatible licence.
char LICENSE[] SEC("license") = "GPL";
