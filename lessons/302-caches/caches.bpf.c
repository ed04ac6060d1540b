// SPDX-License-Identifier: GPL-2.0
//
// Exercise 3.2, kernel side: lesson 3's tracex4.bpf.c, with a second map to fill: how many
// objects each slab cache handed out. Run it with `cargo run -- lesson 302`.
//
// Lesson 3's comment:
//
// Every object the slab allocator hands out through kmem_cache_alloc_node() is recorded
// in a map under its address, with the time and the address of the code that asked for
// it. When the object is freed (kmem_cache_free) the record is deleted. What remains in
// the map are the objects still alive; user space prints those older than a second.
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct pair {
	__u64 val; // when it was allocated (ns since boot)
	__u64 ip;  // where in the kernel it was allocated from
};

// Object address → pair. The original allows 1,000,000 entries; the user side shrinks
// that before loading, to fit the small guest (hash maps are allocated up front).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1000000);
	__type(key, long);
	__type(value, struct pair);
} my_map SEC(".maps");

// void kmem_cache_free(struct kmem_cache *s, void *x): the object is the 2nd argument.
SEC("kprobe")
int free_probe(struct pt_regs *ctx)
{
	long ptr = PT_REGS_PARM2(ctx);

	bpf_map_delete_elem(&my_map, &ptr);
	return 0;
}

// A kretprobe runs when the function returns: its return value is the new object.
SEC("kretprobe")
int alloc_retprobe(struct pt_regs *ctx)
{
	long ptr = PT_REGS_RC(ctx);
	long ip = 0;

	if (!ptr)
		return 0; // the allocation failed
	// The original reads the caller's address from the stack frame ([rbp+8] on x86-64).
	// That needs frame pointers, which Debian's x86-64 kernels do not have: rbp is then
	// an ordinary register, and the read fails (leaving 0) or gives garbage...
	BPF_KRETPROBE_READ_RET_IP(ip, ctx);
	// ...so fall back to the address the kretprobe returns to, which is the caller's
	// on recent kernels (older ones may show the kretprobe trampoline instead).
	if (!ip)
		ip = PT_REGS_IP(ctx);

	struct pair v = {
		.val = bpf_ktime_get_ns(),
		.ip = ip,
	};
	bpf_map_update_elem(&my_map, &ptr, &v, BPF_ANY);
	return 0;
}

// Cache (a struct kmem_cache pointer, as a number) → objects allocated from it.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u64);
} caches SEC(".maps");

// void *kmem_cache_alloc_node(struct kmem_cache *s, gfp_t flags, int node): a kprobe runs
// when the function is entered, so its arguments are still in their registers.
SEC("kprobe")
int alloc_entry(struct pt_regs *ctx)
{
	// EXERCISE 3.2: count this call in `caches`, under the cache it allocates from.
	// - PT_REGS_PARM1(ctx) is the first argument, the cache (PARM2 the second, ...).
	//   The kretprobe above cannot read it: when a function returns, the registers
	//   that held its arguments hold whatever it left there.
	// - Look the count up; if there is none, insert 1 (BPF_NOEXIST), else add 1 with
	//   __sync_fetch_and_add: lesson 2's counter.bpf.c does the same with one key.
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
