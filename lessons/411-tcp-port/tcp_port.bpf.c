// SPDX-License-Identifier: GPL-2.0
//
// Exercise 41.1, solved: tcpdump's `tcp port 80` as an eBPF socket filter. The TCP
// header starts with the source port and then the destination port: pass the packet if
// either is 80.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");

#define KEEP 262144
#define TCP 6
#define PORT 80

// Whether one of the two ports at `tcp` (the TCP header's offset in the packet) is 80.
static __always_inline int either_port(struct __sk_buff *skb, __u64 tcp)
{
	return load_half(skb, tcp) == PORT || load_half(skb, tcp + 2) == PORT;
}

static __always_inline int tcp_port_80(struct __sk_buff *skb)
{
	__u64 ethertype = load_half(skb, 12);
	if (ethertype == ETH_P_IPV6) {
		if (load_byte(skb, 20) != TCP)
			return 0;
		return either_port(skb, ETH_HLEN + 40);
	}
	if (ethertype != ETH_P_IP)
		return 0;
	if (load_byte(skb, 23) != TCP)
		return 0;
	if (load_half(skb, 20) & 0x1fff)
		return 0;
	__u64 ihl = (load_byte(skb, 14) & 0xf) * 4;
	return either_port(skb, ETH_HLEN + ihl);
}

SEC("socket")
int tcp_port(struct __sk_buff *skb)
{
	return tcp_port_80(skb) ? KEEP : 0;
}

char LICENSE[] SEC("license") = "GPL";
