// SPDX-License-Identifier: GPL-2.0
//
// Exercise 41.1, kernel side: lesson 41's eBPF socket filter, `tcp dst port 80`, to be
// changed into tcpdump's `tcp port 80`: the TCP packets whose destination port OR source
// port is 80, so that the socket receives both sides of the conversation. Run it with
// `cargo run -- lesson 4101`.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");

#define KEEP 262144
#define TCP 6
#define PORT 80

// Whether the packet is TCP with port 80 on the side the exercise asks for.
static __always_inline int tcp_port_80(struct __sk_buff *skb)
{
	__u64 ethertype = load_half(skb, 12);
	if (ethertype == ETH_P_IPV6) {
		if (load_byte(skb, 20) != TCP)
			return 0;
		// EXERCISE 41.1: the TCP header starts at 54 (14 bytes of Ethernet, 40 of
		// IPv6): its source port is the half-word at 54, its destination port at 56.
		return load_half(skb, 56) == PORT;
	}
	if (ethertype != ETH_P_IP)
		return 0;
	if (load_byte(skb, 23) != TCP)
		return 0;
	if (load_half(skb, 20) & 0x1fff)
		return 0;
	__u64 ihl = (load_byte(skb, 14) & 0xf) * 4;
	// EXERCISE 41.1: the TCP header starts at ETH_HLEN + ihl: the source port is its
	// first half-word, the destination port the second. Pass the packet if either is 80.
	return load_half(skb, ETH_HLEN + ihl + 2) == PORT;
}

// Keep the function's name: the lesson attaches `tcp_port`.
SEC("socket")
int tcp_port(struct __sk_buff *skb)
{
	return tcp_port_80(skb) ? KEEP : 0;
}

char LICENSE[] SEC("license") = "GPL";
