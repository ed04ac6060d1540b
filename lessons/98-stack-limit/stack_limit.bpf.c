// Mistake 98: a buffer too big for the BPF stack.
//
// The aim is ordinary: print the path of every file opened. The path can be PATH_MAX
// (4096) bytes long, so the obvious C gives it a PATH_MAX buffer on the stack. But an
// eBPF program has 512 bytes of stack in all, and clang's BPF backend knows it: it
// refuses to compile this, before any kernel sees it. The fix is in the book's mistakes
// chapter: a per-CPU array map as scratch space, as clang's message suggests.
#include <linux/bpf.h>
#include <linux/limits.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

SEC("kprobe/do_sys_openat2")
int BPF_KPROBE(print_path, int dfd, const char *filename)
{
	char path[PATH_MAX]; /* 4096 bytes: eight times the whole stack */

	bpf_probe_read_user_str(path, sizeof(path), filename);
	bpf_printk("open %s", path);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
