// SPDX-License-Identifier: GPL-2.0
//
// Mistake 97: this program is rejected by the verifier. Can you see why before running it?
//
// Lesson 1's program with one line changed: its licence. The kernel is GPL, and some
// helpers are exported to GPL-compatible programs only: bpf_trace_printk() is one of them
// (so are bpf_probe_read() and bpf_perf_event_output()). The loader hands the licence
// string to the kernel with the program, and the verifier refuses a GPL-only call from a
// program whose licence is not GPL-compatible: "cannot call GPL-restricted function from
// non-GPL compatible program".
//
// The fix: a GPL-compatible licence string ("GPL", "Dual BSD/GPL", "Dual MIT/GPL", ...),
// or no GPL-only helpers.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("kprobe")
int hello(void *ctx)
{
	char msg[] = "Hello World!!\n";

	bpf_trace_printk(msg, sizeof(msg));
	return 0;
}

char LICENSE[] SEC("license") = "Proprietary";
