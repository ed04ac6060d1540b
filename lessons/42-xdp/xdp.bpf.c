// SPDX-License-Identifier: GPL-2.0
//
// Lesson 42, kernel side: XDP programs (BPF_PROG_TYPE_XDP), which run on each frame a
// network device receives, before the kernel has built anything of its own for it (no
// sk_buff yet, in native mode). The program sees the frame's bytes from `data` to
// `data_end`, and its return value is the frame's fate:
//
//   XDP_ABORTED (0)  drop it, and say so to the xdp:xdp_exception tracepoint
//   XDP_DROP    (1)  drop it
//   XDP_PASS    (2)  hand it on to the kernel's network stack, as if XDP were not there
//   XDP_TX      (3)  send it back out of the device it came in on
//   XDP_REDIRECT(4)  send it to another device, CPU or socket (not in this lesson)
//
// Three programs, one per part of the lesson, on the same frames: `count` passes all
// and counts them by protocol, `drop_udp` drops UDP, and `answer_pings` answers ICMP
// echo requests itself, turning each into its reply and sending it back (XDP_TX).
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

// The ICMP header of an echo request or reply (linux/icmp.h has it too, but includes
// the C library's socket headers, which a BPF target has none of).
struct icmp_echo {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be16 id;
	__be16 sequence;
};
#define ICMP_ECHOREPLY 0
#define ICMP_ECHO 8

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

// Part count: every frame passes; the map says what came.
SEC("xdp")
int count(struct xdp_md *ctx)
{
	struct iphdr *ip = 0;
	add(&counts, classify(ctx, &ip));
	return verdict(XDP_PASS);
}

// Part drop: UDP is dropped before the kernel sees it; the rest passes.
SEC("xdp")
int drop_udp(struct xdp_md *ctx)
{
	struct iphdr *ip = 0;
	int kind = classify(ctx, &ip);
	add(&counts, kind);
	if (kind == UDP)
		return verdict(XDP_DROP);
	return verdict(XDP_PASS);
}

// The 16-bit word `from` of a checksummed header became `to`: the checksum `sum` (as in
// the packet) after that change, without summing the whole header again (RFC 1624).
static __always_inline __u16 checksum_update(__u16 sum, __u16 from, __u16 to)
{
	__u32 s = (__u16)~bpf_ntohs(sum) + (__u16)~from + to;
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return bpf_htons(~s & 0xffff);
}

// Part tx: an ICMP echo request becomes its echo reply in place, and goes back out of
// the device it came in on. The kernel of the pinged host never sees the request.
SEC("xdp")
int answer_pings(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = (void *)(long)ctx->data;
	struct iphdr *ip = 0;
	int kind = classify(ctx, &ip);
	add(&counts, kind);
	if (kind != ICMP || ip->ihl != 5)
		return verdict(XDP_PASS);
	struct icmp_echo *icmp = (void *)(ip + 1);
	if ((void *)(icmp + 1) > data_end || icmp->type != ICMP_ECHO || icmp->code != 0)
		return verdict(XDP_PASS);

	// Back to where it came from: swap the Ethernet addresses, then the IP addresses
	// (which leaves the IP header's checksum as it was: the sum of the same words).
	unsigned char mac[ETH_ALEN];
	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);
	__be32 addr = ip->daddr;
	ip->daddr = ip->saddr;
	ip->saddr = addr;
	// An echo request (type 8) becomes a reply (type 0); the identifier, sequence
	// number and payload stay, so the checksum changes only by the type's word.
	icmp->type = ICMP_ECHOREPLY;
	icmp->checksum = checksum_update(icmp->checksum, ICMP_ECHO << 8, ICMP_ECHOREPLY << 8);
	return verdict(XDP_TX);
}

// For native XDP_TX on a veth: the frame sent back goes straight into the peer's own XDP
// receive queue, which exists only while the peer has an XDP program: this one, which
// passes everything.
SEC("xdp")
int pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
