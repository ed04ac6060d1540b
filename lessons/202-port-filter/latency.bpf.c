// SPDX-License-Identifier: GPL-2.0
//
// Exercise 2.2, kernel side: lesson 2's latency part (lessons/02-tcp/latency.bpf.c), to be
// changed so that it records only the sends to one destination port. Run it with
// `cargo run -- lesson 202`.
//
// How it works, as in lesson 2:
//
// A kprobe on tcp_sendmsg() notes the time, size and connection of each send, keyed by
// the sending thread (pid_tgid). Over loopback, the receiving side's tcp_v4_do_rcv()
// runs in that same thread right after, so a second kprobe there finds the note by the
// same key, computes the delay, reports it and deletes the note.
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

// Just the kernel fields we read. preserve_access_index makes clang record each access
// by name, and the loader patches in the offsets of the running kernel (CO-RE), so the
// same object works whatever the real layout of struct sock is.
struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
} __attribute__((preserve_access_index));

// What we remember about a send.
struct send_info {
	__u64 ts_ns;
	__u64 size;
	__u32 pid;
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
};

// What we report for each message: the send, and how long it took to arrive.
struct sample {
	struct send_info send;
	__u64 latency_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, struct send_info);
} sends SEC(".maps");

// A channel to user space: one ring buffer per CPU, filled by bpf_perf_event_output().
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} samples SEC(".maps");

// int tcp_sendmsg(struct sock *sk, struct msghdr *msg, size_t size)
SEC("kprobe")
int BPF_KPROBE(on_sendmsg, struct sock *sk, void *msg, __u64 size)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct send_info info;

	// Zero the whole struct first, padding included: before 6.3 (and its stable
	// backports) the verifier rejects passing memory with uninitialised bytes to a helper
	// such as bpf_map_update_elem; the book's "When it breaks" says which kernels.
	__builtin_memset(&info, 0, sizeof(info));
	info.ts_ns = bpf_ktime_get_ns();
	info.size = size;
	info.pid = id >> 32;
	// Each field is read from the kernel's memory straight into the zeroed struct: 4.4's
	// verifier lets a helper write only to stack memory that is already initialised, and
	// refuses BPF_CORE_READ(), whose temporary is not.
	bpf_core_read(&info.saddr, sizeof(info.saddr), &sk->__sk_common.skc_rcv_saddr);
	bpf_core_read(&info.daddr, sizeof(info.daddr), &sk->__sk_common.skc_daddr);
	bpf_core_read(&info.sport, sizeof(info.sport), &sk->__sk_common.skc_num);
	bpf_core_read(&info.dport, sizeof(info.dport), &sk->__sk_common.skc_dport);
	info.dport = bpf_ntohs(info.dport);
	// EXERCISE 2.2: the workload sends to ports 8080 and 9090 (PORTS in src/lib.rs).
	// Return early here, before the send is noted, when info.dport is not the port you
	// choose: a send that is not noted is not timed. (info.dport is in host byte order
	// now; the kernel keeps skc_dport in network order, hence the bpf_ntohs above.)
	bpf_map_update_elem(&sends, &id, &info, BPF_ANY);
	return 0;
}

// int tcp_v4_do_rcv(struct sock *sk, struct sk_buff *skb)
SEC("kprobe")
int BPF_KPROBE(on_v4_do_rcv, struct sock *sk)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct send_info *info = bpf_map_lookup_elem(&sends, &id);
	struct sample s;
	// Microseconds: loopback takes well under a millisecond. (A "%03llu" to print
	// fractions of a millisecond would be rejected before 5.13: bpf_trace_printk only
	// takes plain conversions there, and fails silently at run time otherwise.)
	char fmt[] = "tcp_time: %llu us, size: %llu\n";

	if (!info)
		return 0;
	__builtin_memset(&s, 0, sizeof(s));
	s.send = *info;
	s.latency_ns = bpf_ktime_get_ns() - info->ts_ns;

	// The article's line, in the trace pipe (at most three values per call).
	bpf_trace_printk(fmt, sizeof(fmt), s.latency_ns / 1000, s.send.size);
	// The whole record, to user space, which prints addresses and ports, through this
	// CPU's buffer. (BPF_F_CURRENT_CPU says the same since 4.8; 4.4 takes only the index.)
	bpf_perf_event_output(ctx, &samples, bpf_get_smp_processor_id(), &s, sizeof(s));
	bpf_map_delete_elem(&sends, &id);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
