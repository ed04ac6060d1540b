// SPDX-License-Identifier: GPL-2.0
//
// Exercise 42.1 of the book, solved: lesson 42's `drop_udp`, dropping only the UDP
// datagrams to port 9 (the discard service) and passing the rest.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

// counts[kind]: the frames seen, by what they carry.
enum { ARP, ICMP, TCP, UDP, OTHER_IPV4, IPV6, OTHER, KINDS };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KINDS);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

// verdicts[action]: what the program returned, by XDP action (XDP_ABORTED to _REDIRECT).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 5);
	__type(key, __u32);
	__type(value, __u64);
} verdicts SEC(".maps");

static __always_inline void add(void *map, __u32 key)
{
	__u64 *n = bpf_map_lookup_elem(map, &key);
	if (n)
		__sync_fetch_and_add(n, 1);
}

// Counts the frame's verdict and returns it.
static __always_inline int verdict(int action)
{
	add(&verdicts, action);
	return action;
}

// What the frame carries, and where its IPv4 header is (when it has one). Every read of
// the frame is checked against data_end first: the verifier refuses the program
// otherwise, as a read past the end of a frame would read some other memory.
static __always_inline int classify(struct xdp_md *ctx, struct iphdr **ip_out)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return OTHER;
	switch (bpf_ntohs(eth->h_proto)) {
	case ETH_P_ARP:
		return ARP;
	case ETH_P_IPV6:
		return IPV6;
	case ETH_P_IP:
		break;
	default:
		return OTHER;
	}
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return OTHER_IPV4;
	*ip_out = ip;
	switch (ip->protocol) {
	case IPPROTO_ICMP:
		return ICMP;
	case IPPROTO_TCP:
		return TCP;
	case IPPROTO_UDP:
		return UDP;
	}
	return OTHER_IPV4;
}

#define DISCARD_PORT 9

// Drops UDP to port 9 before the kernel sees it; the rest passes.
SEC("xdp")
int drop_udp(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *ip = 0;
	int kind = classify(ctx, &ip);
	add(&counts, kind);
	if (kind != UDP)
		return verdict(XDP_PASS);
	// The IPv4 header is ihl 32-bit words long (5 without options).
	struct udphdr *udp = (void *)ip + ip->ihl * 4;
	if ((void *)(udp + 1) > data_end)
		return verdict(XDP_PASS);
	if (udp->dest == bpf_htons(DISCARD_PORT))
		return verdict(XDP_DROP);
	return verdict(XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
