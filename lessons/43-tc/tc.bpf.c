// SPDX-License-Identifier: GPL-2.0
//
// Lesson 43, kernel side: tc classifiers (BPF_PROG_TYPE_SCHED_CLS), which run on each
// packet a device sends (egress) or receives (ingress), on the sk_buff the kernel has
// already built for it: after the network stack on the way out, before it on the way in.
// Attached in direct-action mode, the program's return value is the packet's fate:
//
//   TC_ACT_OK       (0)  let it go on: out of the device, or up into the stack
//   TC_ACT_SHOT     (2)  drop it
//   TC_ACT_REDIRECT (7)  send it to another device (bpf_redirect; not in this lesson)
//
// The programs run on `lo`, where every packet the workload sends crosses twice: out
// (egress) and straight back in (ingress). `count_egress` and `count_ingress` pass all
// and count them by protocol and bytes; `drop_echo_requests` drops pings on their way
// in; `rewrite_port` changes the destination port of UDP datagrams to port 9 on their
// way out, so that they arrive at port 4243 instead.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

// The start of an ICMP header (linux/icmp.h includes the C library's socket headers,
// which a BPF target has none of).
struct icmp_start {
	__u8 type;
	__u8 code;
};
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

// Rewrites done: datagrams whose destination port `rewrite_port` changed.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} rewrites SEC(".maps");

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

// Parts count, and the other parts' other direction: every packet passes, counted.
SEC("classifier")
int count_egress(struct __sk_buff *skb)
{
	struct iphdr *ip = 0;
	tally(skb, EGRESS, &ip);
	return verdict(EGRESS, TC_ACT_OK);
}

SEC("classifier")
int count_ingress(struct __sk_buff *skb)
{
	struct iphdr *ip = 0;
	tally(skb, INGRESS, &ip);
	return verdict(INGRESS, TC_ACT_OK);
}

// Part drop, at ingress: an ICMP echo request is dropped before the stack sees it (so
// nothing answers it); the rest passes.
SEC("classifier")
int drop_echo_requests(struct __sk_buff *skb)
{
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = 0;
	if (tally(skb, INGRESS, &ip) != ICMP)
		return verdict(INGRESS, TC_ACT_OK);
	struct icmp_start *icmp = (void *)ip + ip->ihl * 4;
	if ((void *)(icmp + 1) > data_end)
		return verdict(INGRESS, TC_ACT_OK);
	if (icmp->type == ICMP_ECHO)
		return verdict(INGRESS, TC_ACT_SHOT);
	return verdict(INGRESS, TC_ACT_OK);
}

#define FROM_PORT 9
#define TO_PORT 4243

// Part rewrite, at egress: a UDP datagram to port 9 leaves for port 4243 instead. The
// bytes are changed with helpers, which tc has and XDP does not: bpf_skb_store_bytes
// writes into the sk_buff (making it private to this path first, should it be shared),
// and bpf_l4_csum_replace updates the UDP checksum for the changed word as the
// sk_buff's checksum state requires (on lo the checksum is still to be computed:
// CHECKSUM_PARTIAL, and the helper leaves it so). BPF_F_MARK_MANGLED_0: a UDP checksum
// of 0 means "none", which must stay 0, and a computed 0 must be sent as 0xffff.
SEC("classifier")
int rewrite_port(struct __sk_buff *skb)
{
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = 0;
	if (tally(skb, EGRESS, &ip) != UDP)
		return verdict(EGRESS, TC_ACT_OK);
	// The UDP header is ihl 32-bit words after the start of the IPv4 header.
	__u32 udp_at = ETH_HLEN + ip->ihl * 4;
	struct udphdr *udp = (void *)ip + ip->ihl * 4;
	if ((void *)(udp + 1) > data_end || udp->dest != bpf_htons(FROM_PORT))
		return verdict(EGRESS, TC_ACT_OK);
	__be16 from = udp->dest;
	__be16 to = bpf_htons(TO_PORT);
	// After either helper, every pointer into the packet is invalid (the sk_buff's data
	// may have moved), and the verifier holds the program to that: only offsets from here.
	if (bpf_l4_csum_replace(skb, udp_at + offsetof(struct udphdr, check), from, to,
				BPF_F_MARK_MANGLED_0 | sizeof(to)) ||
	    bpf_skb_store_bytes(skb, udp_at + offsetof(struct udphdr, dest), &to, sizeof(to), 0))
		return verdict(EGRESS, TC_ACT_SHOT);
	add(&rewrites, 0);
	return verdict(EGRESS, TC_ACT_OK);
}

char LICENSE[] SEC("license") = "GPL";
