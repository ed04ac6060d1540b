// SPDX-License-Identifier: GPL-2.0
//
// Lesson 41, kernel side: tcpdump's `tcp dst port 80`, written as an eBPF socket filter
// (BPF_PROG_TYPE_SOCKET_FILTER, attached with SO_ATTACH_BPF). It makes the same
// decisions as the sixteen classic BPF instructions `tcpdump -d` prints, in the same
// order, and counts what it sees in a map, which classic BPF has no way to do.
//
// A socket filter runs on every packet the socket would receive, before it is queued.
// Its return value is how many bytes of the packet to keep: 0 drops it.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

// The classic loads `ldb [k]`, `ldh [k]` and `ldh [x + k]`: the eBPF instructions
// BPF_LD_ABS and BPF_LD_IND, which read the packet at an offset from its first byte (here
// the Ethernet header) and return the value in host byte order. clang emits them for
// these names.
unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");

// counts[SEEN]: every packet the filter ran on; counts[ACCEPTED]: those it let through.
enum { SEEN, ACCEPTED };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

#define KEEP 262144 // tcpdump's snapshot length: keep the whole packet
#define TCP 6
#define PORT 80

static __always_inline void count(__u32 which)
{
	__u64 *n = bpf_map_lookup_elem(&counts, &which);
	if (n)
		__sync_fetch_and_add(n, 1);
}

static __always_inline int tcp_dst_port_80(struct __sk_buff *skb)
{
	__u64 ethertype = load_half(skb, 12); // (000) ldh [12]
	if (ethertype == ETH_P_IPV6) { // (001) jeq #0x86dd
		if (load_byte(skb, 20) != TCP) // (002)-(003) IPv6 next header
			return 0;
		return load_half(skb, 56) == PORT; // (004)-(005) destination port
	}
	if (ethertype != ETH_P_IP) // (006) jeq #0x800
		return 0;
	if (load_byte(skb, 23) != TCP) // (007)-(008) IPv4 protocol
		return 0;
	if (load_half(skb, 20) & 0x1fff) // (009)-(010) a fragment after the first
		return 0;
	__u64 ihl = (load_byte(skb, 14) & 0xf) * 4; // (011) ldxb 4*([14]&0xf)
	return load_half(skb, ETH_HLEN + ihl + 2) == PORT; // (012)-(013) ldh [x + 16]
}

SEC("socket")
int tcp_dst_port(struct __sk_buff *skb)
{
	count(SEEN);
	if (!tcp_dst_port_80(skb))
		return 0; // (015) ret #0
	count(ACCEPTED);
	return KEEP; // (014) ret #262144
}

char LICENSE[] SEC("license") = "GPL";
