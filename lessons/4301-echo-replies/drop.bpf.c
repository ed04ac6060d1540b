// SPDX-License-Identifier: GPL-2.0
//
// Exercise 43.1 of the book, kernel side: `drop_echo_replies`, attached to lo's egress,
// is to drop the echo replies the kernel sends, on their way out, and nothing else: the
// requests must still leave and arrive (and the kernel answer each), and no reply come
// back. As shipped it drops every ICMP packet, the requests too. Change it where it
// says EXERCISE 43.1. Lesson 431 is a solution.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

// The start of an ICMP header (linux/icmp.h includes the C library's socket headers,
// which a BPF target has none of).
struct icmp_start {
	__u8 type;
	__u8 code;
};
#define ICMP_ECHOREPLY 0
#define ICMP_ECHO 8

// What a packet carries, and which way it went.
enum { ARP, ICMP, TCP, UDP, OTHER_IPV4, IPV6, OTHER, KINDS };
enum { EGRESS, INGRESS, DIRECTIONS };

struct tally {
	__u64 packets;
	__u64 bytes;
};

// counts[direction * KINDS + kind]: the packets seen, and their bytes (skb->len, from
// the Ethernet header on: lo has one, of zeros, as any Ethernet device does).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DIRECTIONS * KINDS);
	__type(key, __u32);
	__type(value, struct tally);
} counts SEC(".maps");

// verdicts[direction * 8 + action]: what the programs returned, TC_ACT_OK to _REDIRECT.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DIRECTIONS * 8);
	__type(key, __u32);
	__type(value, __u64);
} verdicts SEC(".maps");

static __always_inline void add(void *map, __u32 key)
{
	__u64 *n = bpf_map_lookup_elem(map, &key);
	if (n)
		__sync_fetch_and_add(n, 1);
}

// Counts the packet's verdict and returns it.
static __always_inline int verdict(int direction, int action)
{
	add(&verdicts, direction * 8 + action);
	return action;
}

// What the packet carries, and where its IPv4 header is (when it has one). The packet
// is read directly, from skb->data to skb->data_end (Linux 4.7 for tc), each read
// checked against data_end first, as in XDP: the verifier refuses the program otherwise.
static __always_inline int classify(struct __sk_buff *skb, struct iphdr **ip_out)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
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

// Adds the packet to counts[direction][kind]; returns its kind.
static __always_inline int tally(struct __sk_buff *skb, int direction, struct iphdr **ip)
{
	int kind = classify(skb, ip);
	__u32 key = direction * KINDS + kind;
	struct tally *t = bpf_map_lookup_elem(&counts, &key);
	if (t) {
		__sync_fetch_and_add(&t->packets, 1);
		__sync_fetch_and_add(&t->bytes, skb->len);
	}
	return kind;
}

// At egress: drops ICMP, the rest passes.
SEC("classifier")
int drop_echo_replies(struct __sk_buff *skb)
{
	struct iphdr *ip = 0;
	int kind = tally(skb, EGRESS, &ip);
	// EXERCISE 43.1: drop only echo replies (ICMP type 0, ICMP_ECHOREPLY). The ICMP
	// header follows the IPv4 header, which is ip->ihl * 4 bytes long; its first byte is
	// the type (struct icmp_start above). Check the read against skb->data_end first,
	// or the verifier refuses the program.
	if (kind == ICMP)
		return verdict(EGRESS, TC_ACT_SHOT);
	return verdict(EGRESS, TC_ACT_OK);
}

// The other direction: every packet that comes in passes, counted.
SEC("classifier")
int count_ingress(struct __sk_buff *skb)
{
	struct iphdr *ip = 0;
	tally(skb, INGRESS, &ip);
	return verdict(INGRESS, TC_ACT_OK);
}

char LICENSE[] SEC("license") = "GPL";
