// SPDX-License-Identifier: Apache-2.0
/* The lab attaches this to veth ends that receive frames an XDP program
 * redirected or sent back (XDP_TX) from the other end: on this kernel such
 * frames reach the stack only when the receiving veth runs XDP itself. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("xdp")
int lab_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
