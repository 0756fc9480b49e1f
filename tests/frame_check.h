/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Frames a data plane program sent on, held to rules that need no second
 * build (tests/fuzz/fuzz_node.c, and test_fastpath's outputs): the IP and
 * TCP headers whole, a Geneve frame's outer headers exact, and the
 * innermost TCP segment's checksums.  Needs testlib.h.
 */
#ifndef VEIL_TEST_FRAME_CHECK_H
#define VEIL_TEST_FRAME_CHECK_H

/* The IP packet at ip (Ethernet type et, len bytes to the frame's end):
 * -1 broken, else 0 with its layer 4 in *v; exact: the IP length must
 * reach the frame's end (a Geneve frame's outer headers, which the
 * program built), else it may end before it (Ethernet padding). */
struct ipv { int v6, hdr_ok; const uint8_t *ip, *l4; size_t l4len; uint8_t proto; };
static inline int ip_check(uint16_t et, const uint8_t *ip, size_t len, int exact, struct ipv *v)
{
	size_t tot;

	memset(v, 0, sizeof(*v));
	v->ip = ip;
	if (et == 0x0800) {
		if (len < 20 || ip[0] != 0x45)
			return -1;
		tot = t_be16(ip + 2);
		v->hdr_ok = t_fold(t_sum(ip, 20, 0)) == 0;
		v->proto = ip[9];
		v->l4 = ip + 20;
		if (tot < 20)
			return -1;
		v->l4len = tot - 20;
	} else if (et == 0x86dd) {
		if (len < 40 || (ip[0] >> 4) != 6)
			return -1;
		tot = 40 + (size_t)t_be16(ip + 4);
		v->v6 = 1;
		v->hdr_ok = 1;
		v->proto = ip[6];
		v->l4 = ip + 40;
		v->l4len = tot - 40;
	} else {
		return -1;
	}
	return tot > len || (exact && tot != len) ? -1 : 0;
}

/* The innermost TCP segment of a frame, Geneve opened: its IP packet in *v;
 * 1 when there is one, 0 when the frame carries none (not ours to judge),
 * -1 when the frame is broken; out: a frame the program sent, held to the
 * rules above. */
static inline int tcp_of(const uint8_t *f, size_t n, int out, struct ipv *v, const char **why)
{
	struct ipv o;
	uint16_t et;

	*why = "Ethernet or IP header";
	if (n < 14)
		return out ? -1 : 0;
	et = t_be16(f + 12);
	if (ip_check(et, f + 14, n - 14, 0, &o))
		return out ? -1 : 0;
	if (o.proto == 17 && o.l4len >= 16 && t_be16(o.l4 + 2) == 6081) {
		const uint8_t *g = o.l4 + 8;
		size_t optl = (size_t)(g[0] & 0x3f) * 4;
		if (out) {
			*why = "the Geneve frame's headers";
			if (ip_check(et, f + 14, n - 14, 1, &o) || !o.hdr_ok || t_be16(o.l4 + 4) != o.l4len ||
			    (g[0] >> 6) != 0 || 8 + 8 + optl > o.l4len)
				return -1;
		}
		if (8 + 8 + optl > o.l4len)
			return 0;
		et = t_be16(g + 2);
		/* the inner packet may end before the tunnel's payload does:
		 * bytes a VM's frame had after its IP packet go along, as the
		 * Ethernet padding they were (the gateway's redirect keeps them
		 * too, and the client's stack reads the IP length) */
		*why = "the inner packet";
		if (ip_check(et, g + 8 + optl, o.l4len - 16 - optl, 0, v))
			return out ? -1 : 0;
	} else {
		*v = o;
	}
	if (v->proto != 6)
		return 0;
	*why = "the TCP header";
	if (v->l4len < 20 || (size_t)(v->l4[12] >> 4) * 4 < 20 || (size_t)(v->l4[12] >> 4) * 4 > v->l4len)
		return out ? -1 : 0;
	return 1;
}

static inline int tcp_sum_ok(const struct ipv *v)
{
	return t_l4_verify(v->v6, v->ip, v->l4, v->l4len, 6) == 0;
}

/* A frame sent on for one that came in: "" when the rules hold, else
 * what broke (in a static buffer).  The innermost TCP segment's checksums
 * (IPv4 header and TCP) that held coming in must hold going out, whatever
 * was rewritten (cmp_in: the frame out is the input's own segment, moved
 * or rewritten; else an answer or another segment, held only to being
 * whole). */
static inline const char *frame_sent_ok(const uint8_t *in, size_t n, const uint8_t *out, size_t len, int cmp_in)
{
	static char m[160];
	struct ipv vi, vo;
	const char *why;
	int to = tcp_of(out, len, 1, &vo, &why);

	if (to < 0) {
		snprintf(m, sizeof(m), "a broken frame sent on (%s)", why);
		return m;
	}
	if (cmp_in && to == 1 && tcp_of(in, n, 0, &vi, &why) == 1 && vi.hdr_ok && tcp_sum_ok(&vi) &&
	    (!vo.hdr_ok || !tcp_sum_ok(&vo))) {
		snprintf(m, sizeof(m), "checksums that held came out wrong (IP header %s, TCP %s)",
			 vo.hdr_ok ? "holds" : "wrong", tcp_sum_ok(&vo) ? "holds" : "wrong");
		return m;
	}
	return "";
}

/* A frame the program made (an answer, the hello it replays): whole, and
 * its innermost TCP segment's checksums holding. */
static inline const char *frame_made_ok(const uint8_t *out, size_t len)
{
	static char m[160];
	struct ipv v;
	const char *why;
	int t = tcp_of(out, len, 1, &v, &why);

	if (t < 0)
		snprintf(m, sizeof(m), "a broken frame made (%s)", why);
	else if (t == 0)
		snprintf(m, sizeof(m), "a frame made without a TCP segment");
	else if (!v.hdr_ok || !tcp_sum_ok(&v))
		snprintf(m, sizeof(m), "a frame made with a wrong checksum (IP header %s, TCP %s)",
			 v.hdr_ok ? "holds" : "wrong", tcp_sum_ok(&v) ? "holds" : "wrong");
	else
		return "";
	return m;
}

#endif
