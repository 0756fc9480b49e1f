# veilmesh: make (build), make test, make demo, make bench
BUILD   ?= build
CLANG   ?= clang
CC      ?= gcc
BPFTOOL ?= bpftool
# what installs the Debian packages (a test swaps it to check the rules' order)
DEPS_SH ?= tools/deps.sh
ARCH    := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')

CFLAGS  ?= -O2 -g -Wall -Wextra -Wno-unused-parameter
CFLAGS  += -Iinclude -I$(BUILD) -Idataplane -Icontrolplane -D_GNU_SOURCE
LDLIBS  := -lxdp -lbpf -lelf -lz -lcrypto -lmnl
# -mcpu=v3: 32-bit ALU and jumps (32-bit arithmetic on addresses, sequence
# numbers and the flow key's fold without a shift pair zeroing the upper half
# after each operation: ~4% fewer instructions in gw_ingress) and atomic
# fetch (conn_gen_move); Linux 5.12 or later, below what the programs need
# anyway (bpf_cast_to_kern_ctx: 6.3)
BPF_CFLAGS := -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_$(ARCH) -I$(BUILD) -Ibpf -Iinclude \
	-Wall -Wno-unused-function -Wno-address-of-packed-member

# header dependencies of every object file, written beside it (-MMD -MP) and
# read back below: a change to any header rebuilds what includes it
DEPFLAGS := -MMD -MP

BPF_SRCS := $(wildcard bpf/*.bpf.c)
BPF_OBJS := $(patsubst bpf/%.bpf.c,$(BUILD)/%.bpf.o,$(BPF_SRCS))
SKELS    := $(patsubst bpf/%.bpf.c,$(BUILD)/%.skel.h,$(BPF_SRCS))
HDRS     := $(wildcard include/veil/*.h) $(wildcard bpf/lib/*.h) $(wildcard dataplane/*.h) controlplane/common/daemon.h

LIB_SRCS := $(wildcard dataplane/*.c)
LIB_OBJS := $(patsubst dataplane/%.c,$(BUILD)/lib/%.o,$(LIB_SRCS))
LIB      := $(BUILD)/libveil.a
# the daemons' skeleton (controlplane/common/daemon.c): its own small library
# for the control-plane daemons, and a member of libveil for the data plane's
DAEMON_OBJ := $(BUILD)/common/daemon.o
DAEMON_LIB := $(BUILD)/libveildaemon.a
KEYS_SRCS := $(wildcard controlplane/keys/*.c)
KEYS_OBJS := $(patsubst controlplane/keys/%.c,$(BUILD)/keys/%.o,$(KEYS_SRCS))
KEYS_LIB := $(BUILD)/libveilkeys.a

BINS := $(BUILD)/veil-agent $(BUILD)/veil-gw $(BUILD)/veil-node $(BUILD)/veilctl $(BUILD)/veil-validator $(BUILD)/veil-registry $(BUILD)/veil-attest $(BUILD)/veil-bench-micro $(BUILD)/veil-hellogen $(BUILD)/veil-flood $(BUILD)/veil-gw-dpdk $(BUILD)/veil-dpdk-baseline $(BUILD)/veil-fpgen $(BUILD)/veil-attest-bench $(BUILD)/veil-dns $(BUILD)/veil-storectl $(BUILD)/tests/store_put $(BUILD)/veil-bench-routes $(BUILD)/veil-bench-maps \
	$(BUILD)/veil-controller $(BUILD)/tests/ctl_agents $(BUILD)/veil-ek $(BUILD)/veil-tls-bench $(BUILD)/tests/nodereg_client
TESTS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/test_*.c))

.PHONY: all deps deps-build deps-test test demo demo-flow demo-lab bench bench-quick deps-bench fuzz clean install
FUZZERS := $(BUILD)/tests/fuzz_hello $(BUILD)/tests/fuzz_diff $(BUILD)/tests/fuzz_share $(BUILD)/tests/fuzz_evidence \
	$(BUILD)/tests/fuzz_eventlog $(BUILD)/tests/fuzz_request $(BUILD)/tests/fuzz_dns $(BUILD)/tests/fuzz_envelope $(BUILD)/tests/fuzz_ctl \
	$(BUILD)/tests/fuzz_dns_frame $(BUILD)/tests/fuzz_fastpath $(BUILD)/tests/fuzz_node

# Every rule that runs an installed tool or compiles against an installed
# library has deps-build as an order-only prerequisite: `make -j2` on a fresh
# machine runs nothing before the packages are there.
all: deps-build $(BPF_OBJS) $(SKELS) $(LIB) $(BINS) $(TESTS) $(BUILD)/lab_pass.bpf.o $(BUILD)/tests/mapcount $(FUZZERS)

# the packages are checked once per build tree (and again when deps.sh
# changes), not on every make; `make deps` checks them again
deps:
	@$(DEPS_SH) build
	@mkdir -p $(BUILD) && touch $(BUILD)/.deps-build.stamp
deps-build: $(BUILD)/.deps-build.stamp
$(BUILD)/.deps-build.stamp: $(DEPS_SH)
	@mkdir -p $(BUILD)
	@$(DEPS_SH) build
	@touch $@
deps-test:
	@$(DEPS_SH) test

$(BUILD)/vmlinux.h: | deps-build
	@mkdir -p $(BUILD)
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

$(BUILD)/%.bpf.o: bpf/%.bpf.c $(HDRS) $(BUILD)/vmlinux.h | deps-build
	$(CLANG) $(BPF_CFLAGS) $(DEPFLAGS) -c $< -o $@

$(BUILD)/lab_pass.bpf.o: tools/lab_pass.bpf.c $(BUILD)/vmlinux.h | deps-build
	$(CLANG) $(BPF_CFLAGS) $(DEPFLAGS) -c $< -o $@
$(BUILD)/bench_base.bpf.o: tools/bench_base.bpf.c $(BUILD)/vmlinux.h | deps-build
	$(CLANG) $(BPF_CFLAGS) $(DEPFLAGS) -c $< -o $@

$(BUILD)/%.skel.h: $(BUILD)/%.bpf.o | deps-build
	$(BPFTOOL) gen skeleton $< name $(subst -,_,$*) > $@.tmp && mv $@.tmp $@

$(BUILD)/lib/%.o: dataplane/%.c $(HDRS) $(SKELS) | deps-build
	@mkdir -p $(BUILD)/lib
	$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@
# the packet path the DPDK gateway runs per packet (fp_env.c: the packet
# library in its environment; dp.c: the bursts around it) at -O3: measured,
# 1.03-1.05x the established rate of -O2 (docs/dpdk.md).  Its memsets and
# copies as vector loops, not rep stos (a slow start on every use: the
# hello's flow and parse state, 144 and 280 bytes): hellos 1.15x, the ACK
# flood 1.16x, established unchanged (docs/dpdk.md)
DP_OPT := -O3 -mstringop-strategy=vector_loop
$(BUILD)/lib/fp_env.o $(BUILD)/dpdk/dp.o: CFLAGS += $(DP_OPT)

# rebuilt whole: a member left from a renamed source would shadow the new one
$(LIB): $(LIB_OBJS) $(DAEMON_OBJ) | deps-build
	rm -f $@ && ar rcs $@ $^

$(BUILD)/common/%.o: controlplane/common/%.c | deps-build
	@mkdir -p $(BUILD)/common
	$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@
$(DAEMON_LIB): $(DAEMON_OBJ) | deps-build
	rm -f $@ && ar rcs $@ $^

$(BUILD)/keys/%.o: controlplane/keys/%.c $(wildcard controlplane/keys/*.h) | deps-build
	@mkdir -p $(BUILD)/keys
	$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

$(KEYS_LIB): $(KEYS_OBJS) | deps-build
	ar rcs $@ $^

$(BUILD)/veil-node: controlplane/veil-node.c $(LIB) $(HDRS) | deps-build
	$(CC) $(CFLAGS) $< $(LIB) $(LDLIBS) -o $@

# veil-agent (the node's hypervisor role): its own library, no BPF.
AGENT_SRCS := $(filter-out controlplane/agent/veil-agent.c,$(wildcard controlplane/agent/*.c))
AGENT_OBJS := $(patsubst controlplane/agent/%.c,$(BUILD)/agent/%.o,$(AGENT_SRCS))
AGENT_LIB  := $(BUILD)/libveilagent.a
AGENT_CFLAGS = -Icontrolplane/agent $(shell pkg-config --cflags libxml-2.0 libnl-route-3.0 2>/dev/null)
# (storefeed.c: orders from the cluster store, through libveilstore)
AGENT_LDLIBS := $(BUILD)/libveilstore.a $(DAEMON_LIB) -lnats -lyaml -ljson-c -lxml2 -lvirt -lnl-route-3 -lnl-3 -lnftnl -lmnl -lcurl -lssl -lcrypto -lpthread
$(BUILD)/agent/%.o: controlplane/agent/%.c $(wildcard controlplane/agent/*.h) | deps-build
	@mkdir -p $(BUILD)/agent
	$(CC) $(CFLAGS) $(AGENT_CFLAGS) $(DEPFLAGS) -c $< -o $@
$(AGENT_LIB): $(AGENT_OBJS) | deps-build
	ar rcs $@ $^
# (register.c: joining with the node's TPM, through keys/tpm.h and keys/attest.h)
$(BUILD)/veil-agent: controlplane/agent/veil-agent.c $(AGENT_LIB) $(BUILD)/libveilstore.a $(DAEMON_LIB) $(KEYS_LIB) $(wildcard controlplane/agent/*.h) | deps-build
	$(CC) $(CFLAGS) $(AGENT_CFLAGS) $< $(AGENT_LIB) $(KEYS_LIB) $(AGENT_LDLIBS) -ltss2-esys -ltss2-tctildr -ltss2-mu -o $@
AGENT_TESTS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/test_agent*.c))
$(AGENT_TESTS): $(BUILD)/tests/%: tests/%.c tests/testlib.h $(AGENT_LIB) $(BUILD)/libveilstore.a $(DAEMON_LIB) $(wildcard controlplane/agent/*.h) | deps-build
	@mkdir -p $(BUILD)/tests
	$(CC) $(CFLAGS) -Itests $(AGENT_CFLAGS) $< $(AGENT_LIB) $(AGENT_LDLIBS) -o $@

# the cluster store (NATS JetStream through libnats, docs/store.md): one
# library for every daemon that reads or writes cluster state
STORE_SRCS := $(wildcard controlplane/store/*.c)
STORE_OBJS := $(patsubst controlplane/store/%.c,$(BUILD)/store/%.o,$(STORE_SRCS))
STORE_LIB  := $(BUILD)/libveilstore.a
STORE_LDLIBS := -lnats -ljson-c -lssl -lcrypto -lpthread
$(BUILD)/store/%.o: controlplane/store/%.c $(wildcard controlplane/store/*.h) | deps-build
	@mkdir -p $(BUILD)/store
	$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@
$(STORE_LIB): $(STORE_OBJS) | deps-build
	ar rcs $@ $^
$(BUILD)/tests/test_store: tests/test_store.c tests/testlib.h $(STORE_LIB) $(wildcard controlplane/store/*.h) | deps-build
	@mkdir -p $(BUILD)/tests
	$(CC) $(CFLAGS) -Itests $< $(STORE_LIB) $(STORE_LDLIBS) -o $@

# veil-controller (controlplane/ctl/): the API over the shared TLS server
# (controlplane/common/httpd.c) and the order driver over the store; its pure
# parts (request checks, scheduler) also go into test_ctl and fuzz_ctl.
CTL_CORE := controlplane/ctl/req.c controlplane/ctl/sched.c
CTL_HDRS := controlplane/ctl/ctl.h controlplane/common/httpd.h $(wildcard controlplane/store/*.h)
# (node registration: EK chain and credentials from keys/ek.h, quotes from keys/attest.h)
$(BUILD)/veil-controller: controlplane/ctl/veil-controller.c controlplane/common/httpd.c $(CTL_CORE) $(CTL_HDRS) $(STORE_LIB) $(KEYS_LIB) $(DAEMON_LIB) | deps-build
	$(CC) $(CFLAGS) controlplane/ctl/veil-controller.c controlplane/common/httpd.c $(CTL_CORE) $(STORE_LIB) $(KEYS_LIB) $(DAEMON_LIB) \
		$(STORE_LDLIBS) $(EVENT_LDLIBS) -ljson-c -lssl -lcrypto -ltss2-mu -o $@
$(BUILD)/tests/test_ctl: tests/test_ctl.c tests/testlib.h $(CTL_CORE) $(CTL_HDRS) | deps-build
	@mkdir -p $(BUILD)/tests
	$(CC) $(CFLAGS) -Itests $< $(CTL_CORE) -ljson-c -lcrypto -o $@
# the test driver that plays node agents and the registry through the store
$(BUILD)/tests/ctl_agents: tests/ctl_agents.c $(STORE_LIB) $(wildcard controlplane/store/*.h) | deps-build
	@mkdir -p $(BUILD)/tests
	$(CC) $(CFLAGS) $< $(STORE_LIB) $(STORE_LDLIBS) -o $@
# the test driver that plays a node registering with its TPM (swtpm), misbehaving on purpose
$(BUILD)/tests/nodereg_client: tests/nodereg_client.c $(KEYS_LIB) $(wildcard controlplane/keys/*.h) | deps-build
	@mkdir -p $(BUILD)/tests
	$(CC) $(CFLAGS) $< $(KEYS_LIB) -ljson-c -lssl -lcrypto -ltss2-esys -ltss2-tctildr -ltss2-mu -o $@
$(BUILD)/tests/fuzz_ctl: tests/fuzz/fuzz_ctl.c $(CTL_CORE) $(CTL_HDRS) | deps-build
	@mkdir -p $(BUILD)/tests
	$(CLANG) -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Icontrolplane $< $(CTL_CORE) -ljson-c -lcrypto -o $@
# veil-gw: routes from its file, and from the store's bucket routes (gw_store.c)
$(BUILD)/veil-gw: controlplane/veil-gw.c controlplane/gw_store.c controlplane/gw_store.h $(LIB) $(STORE_LIB) $(HDRS) | deps-build
	$(CC) $(CFLAGS) controlplane/veil-gw.c controlplane/gw_store.c $(LIB) $(STORE_LIB) $(LDLIBS) $(STORE_LDLIBS) -o $@
# what shell tests and benchmarks use to write signed store entries
$(BUILD)/tests/store_put: tests/store_put.c $(STORE_LIB) $(wildcard controlplane/store/*.h) | deps-build
	@mkdir -p $(BUILD)/tests
	$(CC) $(CFLAGS) $< $(STORE_LIB) $(STORE_LDLIBS) -o $@
# the daemons' housekeeping of a big map against the key-by-key walk (make bench)
$(BUILD)/veil-bench-maps: tools/bench_maps.c $(LIB) $(HDRS) | deps-build
	$(CC) $(CFLAGS) $< $(LIB) $(LDLIBS) -o $@
$(BUILD)/veil-bench-routes: tools/bench_routes.c $(STORE_LIB) $(LIB) $(HDRS) $(wildcard controlplane/store/*.h) | deps-build
	$(CC) $(CFLAGS) $< $(STORE_LIB) $(LIB) $(LDLIBS) $(STORE_LDLIBS) -lm -o $@

$(BUILD)/veil-bench-micro: tools/bench_micro.c tests/bpf_env.h tests/testlib.h $(LIB) $(HDRS) $(BUILD)/bench_base.bpf.o | deps-build
	$(CC) $(CFLAGS) -Itests -DBASE_OBJ='"$(abspath $(BUILD))/bench_base.bpf.o"' $< $(LIB) $(LDLIBS) -lm -o $@

KEYS_LDLIBS := -ljson-c -lssl -lcrypto -ltss2-mu
EVENT_LDLIBS := -levent_openssl -levent_pthreads -levent
$(BUILD)/veil-validator: controlplane/veil-validator.c $(KEYS_LIB) $(DAEMON_LIB) | deps-build
	$(CC) $(CFLAGS) $< $(KEYS_LIB) $(DAEMON_LIB) $(KEYS_LDLIBS) $(EVENT_LDLIBS) -o $@
# veil-registry, with its worker fed from the store (controlplane/registry_worker.c)
$(BUILD)/veil-registry: controlplane/veil-registry.c controlplane/registry_worker.c $(KEYS_LIB) $(BUILD)/libveilstore.a $(DAEMON_LIB) | deps-build
	$(CC) $(CFLAGS) controlplane/veil-registry.c controlplane/registry_worker.c $(KEYS_LIB) $(BUILD)/libveilstore.a $(DAEMON_LIB) \
		$(KEYS_LDLIBS) -lnats -lpthread -o $@
$(BUILD)/veil-attest-bench: tools/attest_bench.c tests/soft_tpm.h $(KEYS_LIB) | deps-build
	$(CC) $(CFLAGS) -Itests $< $(KEYS_LIB) $(KEYS_LDLIBS) -lcrypto -o $@
$(BUILD)/veil-tls-bench: tools/tls_bench.c | deps-build
	$(CC) $(CFLAGS) $< -lssl -lcrypto -o $@
$(BUILD)/veil-ek: tools/veil-ek.c $(KEYS_LIB) | deps-build
	$(CC) $(CFLAGS) $< $(KEYS_LIB) $(KEYS_LDLIBS) -o $@
$(BUILD)/veil-attest: images/attest/veil-attest.c $(KEYS_LIB) | deps-build
	$(CC) $(CFLAGS) $< $(KEYS_LIB) $(KEYS_LDLIBS) -ltss2-esys -ltss2-tctildr -o $@

$(BUILD)/veilctl: tools/veilctl.c tools/replay.c $(LIB) $(HDRS) | deps-build
	$(CC) $(CFLAGS) tools/veilctl.c tools/replay.c $(LIB) $(LDLIBS) -lpcap -ljson-c -o $@

DPDK_CFLAGS = $(shell pkg-config --cflags libdpdk 2>/dev/null)
DPDK_LIBS   = $(shell pkg-config --libs libdpdk 2>/dev/null)
DPDK_HDRS := $(wildcard dataplane/dpdk/*.h)
$(BUILD)/dpdk/%.o: dataplane/dpdk/%.c $(HDRS) $(DPDK_HDRS) | deps-build
	@mkdir -p $(BUILD)/dpdk
	$(CC) $(CFLAGS) -Idataplane/dpdk $(DPDK_CFLAGS) $(DEPFLAGS) -c $< -o $@
$(BUILD)/veil-gw-dpdk: $(BUILD)/dpdk/veil-gw-dpdk.o $(BUILD)/dpdk/dp.o $(LIB) | deps-build
	$(CC) $^ $(DPDK_LIBS) $(LDLIBS) -o $@
# the DPDK benchmark's baseline: rte_hash + a prebuilt Geneve header (tools/bench_dpdk.sh)
$(BUILD)/veil-dpdk-baseline: tools/dpdk_baseline.c $(HDRS) | deps-build
	$(CC) $(CFLAGS) $(DPDK_CFLAGS) $(DEPFLAGS) $< $(DPDK_LIBS) -o $@

# veil-dns: the GeoDNS server (controlplane/dns/), its core also built into the fuzzer
DNS_SRCS := controlplane/dns/geo.c controlplane/dns/zone.c controlplane/dns/query.c
DNS_HDRS := $(wildcard controlplane/dns/*.h) controlplane/dns/centroids.inc $(wildcard include/veil/*.h)
# veil-storectl: reads and writes the cluster store (plain and sealed records) for operators and tests
$(BUILD)/veil-storectl: tools/storectl.c $(STORE_LIB) $(wildcard controlplane/store/*.h) | deps-build
	$(CC) $(CFLAGS) $< $(STORE_LIB) $(STORE_LDLIBS) -o $@
# (with its AF_XDP path: xsk.c, frame.c and the dns_xsk program's skeleton)
DNS_XSK_SRCS := controlplane/dns/xsk.c controlplane/dns/frame.c
$(BUILD)/veil-dns: controlplane/dns/veil-dns.c controlplane/dns/feed.c $(DNS_SRCS) $(DNS_XSK_SRCS) $(DNS_HDRS) $(BUILD)/dns_xsk.skel.h $(LIB) $(STORE_LIB) | deps-build
	$(CC) $(CFLAGS) controlplane/dns/veil-dns.c controlplane/dns/feed.c $(DNS_SRCS) $(DNS_XSK_SRCS) $(LIB) $(STORE_LIB) $(LDLIBS) \
		$(STORE_LDLIBS) -lldns -lm -lpthread -o $@

$(BUILD)/veil-fpgen: tools/fpgen.c tests/testlib.h tests/fpgen.h $(LIB) $(HDRS) | deps-build
	$(CC) $(CFLAGS) $< $(LIB) $(LDLIBS) -lpcap -o $@

$(BUILD)/veil-hellogen: tools/hellogen.c | deps-build
	$(CC) $(CFLAGS) $< -lssl -lcrypto -o $@

$(BUILD)/veil-flood: tools/flood.c tests/testlib.h $(LIB) $(HDRS) | deps-build
	$(CC) $(CFLAGS) $< $(LIB) $(LDLIBS) -o $@

$(BUILD)/tests/mapcount: tests/mapcount.c $(LIB) $(HDRS) | deps-build
	@mkdir -p $(BUILD)/tests
	$(CC) $(CFLAGS) $< $(LIB) $(LDLIBS) -o $@

# libFuzzer targets (clang): the parser alone with ASan/UBSan, and the
# differential harness against the XDP program.
$(BUILD)/tests/fuzz_hello: tests/fuzz/fuzz_hello.c $(HDRS) | deps-build
	@mkdir -p $(BUILD)/tests
	$(CLANG) -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude $< -o $@
$(BUILD)/tests/fuzz_share: tests/fuzz/fuzz_share.c controlplane/keys/shamir.c controlplane/keys/shamir.h | deps-build
	@mkdir -p $(BUILD)/tests
	$(CLANG) -g -O1 -fsanitize=fuzzer,address,undefined -Icontrolplane $< controlplane/keys/shamir.c -lcrypto -o $@
$(BUILD)/tests/fuzz_evidence: tests/fuzz/fuzz_evidence.c controlplane/keys/attest.c controlplane/keys/evidence.c controlplane/keys/attest.h | deps-build
	@mkdir -p $(BUILD)/tests
	$(CLANG) -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Icontrolplane $< controlplane/keys/attest.c \
		controlplane/keys/evidence.c -ljson-c -lssl -lcrypto -ltss2-mu -o $@
$(BUILD)/tests/fuzz_eventlog: tests/fuzz/fuzz_eventlog.c controlplane/keys/attest.c controlplane/keys/evidence.c controlplane/keys/attest.h | deps-build
	@mkdir -p $(BUILD)/tests
	$(CLANG) -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Icontrolplane $< controlplane/keys/attest.c \
		controlplane/keys/evidence.c -ljson-c -lssl -lcrypto -ltss2-mu -o $@
$(BUILD)/tests/fuzz_request: tests/fuzz/fuzz_request.c tests/soft_tpm.h controlplane/veil-validator.c $(KEYS_SRCS) $(wildcard controlplane/keys/*.h) controlplane/common/daemon.c controlplane/common/daemon.h | deps-build
	@mkdir -p $(BUILD)/tests
	$(CLANG) -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Icontrolplane $< $(KEYS_SRCS) controlplane/common/daemon.c \
		-ljson-c -lssl -lcrypto -ltss2-esys -ltss2-tctildr -ltss2-mu $(EVENT_LDLIBS) -o $@
$(BUILD)/tests/fuzz_dns: tests/fuzz/fuzz_dns.c tests/fuzz/dns_snap.h $(DNS_SRCS) $(DNS_HDRS) | deps-build
	@mkdir -p $(BUILD)/tests
	$(CLANG) -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Icontrolplane $< $(DNS_SRCS) \
		-lldns -lm -lpthread -o $@
# the AF_XDP frames (parse shared with the XDP program, the answer frame) through the query path
$(BUILD)/tests/fuzz_dns_frame: tests/fuzz/fuzz_dns_frame.c tests/fuzz/dns_snap.h controlplane/dns/frame.c $(DNS_SRCS) $(DNS_HDRS) | deps-build
	@mkdir -p $(BUILD)/tests
	$(CLANG) -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Icontrolplane $< controlplane/dns/frame.c \
		$(DNS_SRCS) -lldns -lm -lpthread -o $@
$(BUILD)/tests/fuzz_envelope: tests/fuzz/fuzz_envelope.c $(STORE_SRCS) $(wildcard controlplane/store/*.h) | deps-build
	@mkdir -p $(BUILD)/tests
	$(CLANG) -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Icontrolplane $< $(STORE_SRCS) $(STORE_LDLIBS) -o $@
$(BUILD)/tests/fuzz_diff: tests/fuzz/fuzz_diff.c tests/bpf_env.h tests/testlib.h $(LIB) $(HDRS) | deps-build
	@mkdir -p $(BUILD)/tests
	$(CLANG) -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer -Iinclude -I$(BUILD) -Idataplane -Icontrolplane -Itests $< $(LIB) $(LDLIBS) -o $@
# the node's programs through BPF_PROG_TEST_RUN, held to rules (frames whole, checksums kept, drops counted)
$(BUILD)/tests/fuzz_node: tests/fuzz/fuzz_node.c tests/bpf_env.h tests/testlib.h tests/frame_check.h tests/fuzz_trace.h $(LIB) $(HDRS) | deps-build
	@mkdir -p $(BUILD)/tests
	$(CLANG) -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -I$(BUILD) -Idataplane -Icontrolplane -Itests $< $(LIB) $(LDLIBS) -o $@

# the equivalence test under libFuzzer: the packet library's C build (its
# environment, the rest of libveil and the DPDK worker) compiled in with
# coverage, ASan and UBSan (its alignment check too: VM_WIRE_HDR, wire.h)
FUZZ_FP_SRCS := $(LIB_SRCS) dataplane/dpdk/dp.c controlplane/common/daemon.c
$(BUILD)/tests/fuzz_fastpath: tests/test_fastpath.c tests/testlib.h tests/bpf_env.h tests/frame_check.h tests/fuzz_trace.h tests/fpgen.h $(FUZZ_FP_SRCS) dataplane/dpdk/dp.h $(HDRS) $(SKELS) | deps-build
	@mkdir -p $(BUILD)/tests
	$(CLANG) -D_GNU_SOURCE -DVEIL_FUZZ_FASTPATH -g -O1 -fsanitize=fuzzer,address,undefined \
		-Wno-unused-function -Iinclude -I$(BUILD) -Idataplane -Icontrolplane -Itests -Idataplane/dpdk $(DPDK_CFLAGS) \
		$< $(FUZZ_FP_SRCS) $(DPDK_LIBS) -lrte_net_ring $(LDLIBS) -o $@
# the equivalence test also drives the DPDK packet path (ring-backed ports)
$(BUILD)/tests/test_fastpath: tests/test_fastpath.c tests/testlib.h tests/bpf_env.h tests/frame_check.h tests/fpgen.h $(BUILD)/dpdk/dp.o $(LIB) $(HDRS) | deps-build
	@mkdir -p $(BUILD)/tests
	$(CC) $(CFLAGS) -Itests -Idataplane/dpdk $(DPDK_CFLAGS) $< $(BUILD)/dpdk/dp.o $(LIB) $(DPDK_LIBS) -lrte_net_ring \
		$(LDLIBS) -o $@
$(BUILD)/tests/test_dns: tests/test_dns.c tests/testlib.h $(DNS_SRCS) $(DNS_HDRS) | deps-build
	@mkdir -p $(BUILD)/tests
	$(CC) $(CFLAGS) -Itests $< $(DNS_SRCS) -lldns -lm -lpthread -o $@
$(BUILD)/tests/%: tests/%.c tests/testlib.h tests/bpf_env.h $(LIB) $(KEYS_LIB) $(HDRS) | deps-build
	@mkdir -p $(BUILD)/tests
	$(CC) $(CFLAGS) -Itests $< $(LIB) $(KEYS_LIB) $(LDLIBS) -ljson-c -lssl -ltss2-mu -o $@

test: deps-test deps-bench all
	@tests/run.sh

# the whole flow: controller API -> registry -> validators -> node agents -> VMs -> gateways and DNS
demo: deps-test all
	@tools/demo-flow.sh
demo-flow: demo
# the data-plane lab alone (the demo before the flow; DATAPLANE=dpdk for veil-gw-dpdk)
demo-lab: deps-test all
	@VEIL_DATAPLANE=$(or $(DATAPLANE),xdp) tools/lab.sh demo

fuzz: all
	@tests/fuzz.sh $${FUZZ_SECONDS:-300}

bench: deps-test deps-bench all
	@tools/bench.sh full

bench-quick: deps-test deps-bench all
	@tools/bench.sh quick

deps-bench:
	@$(DEPS_SH) bench

# make install [PREFIX=/usr/local] [DESTDIR=]: the daemons and veilctl, their man
# pages (section 8) and their config files' (section 5), the test and benchmark
# tools (bin, section 1), a systemd unit per daemon, the example configs.
# veil-bench-micro stays in the build tree (it loads its baseline object from
# there); its page is installed with the others.  Nothing under /etc is
# written: the units read /etc/veilmesh/*.conf, which the operator provides.
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/veilmesh
UNITDIR    ?= $(PREFIX)/lib/systemd/system
INSTALL_SBIN := veil-gw veil-node veil-agent veil-gw-dpdk veil-validator veil-registry veil-controller veilctl veil-dns veil-storectl
INSTALL_BIN  := veil-hellogen veil-flood veil-fpgen veil-dpdk-baseline veil-attest-bench veil-ek veil-tls-bench veil-bench-routes veil-bench-maps
INSTALL_MAN1 := $(wildcard docs/man/*.1)
INSTALL_MAN  := $(wildcard docs/man/*.8)
INSTALL_MAN5 := $(wildcard docs/man/*.5)
UNITS        := $(wildcard tools/systemd/*.service.in)

install: $(addprefix $(BUILD)/,$(INSTALL_SBIN) $(INSTALL_BIN))
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(DOCDIR) $(DESTDIR)$(UNITDIR)
	install -m 0755 $(addprefix $(BUILD)/,$(INSTALL_SBIN)) $(DESTDIR)$(SBINDIR)/
	install -m 0755 $(addprefix $(BUILD)/,$(INSTALL_BIN)) $(DESTDIR)$(BINDIR)/
	install -m 0644 $(INSTALL_MAN1) $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(INSTALL_MAN) $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 $(INSTALL_MAN5) $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 docs/*.example docs/*.md $(DESTDIR)$(DOCDIR)/
	# what veil-registry worker builds images with (its images_dir)
	install -d $(DESTDIR)$(PREFIX)/share/veilmesh/images
	install -m 0755 images/mkrootfs.sh images/mkinitrd.sh images/init images/os-init $(DESTDIR)$(PREFIX)/share/veilmesh/images/
	for u in $(UNITS); do \
		sed -e 's|@SBINDIR@|$(SBINDIR)|g; s|@DOCDIR@|$(DOCDIR)|g' $$u > $(DESTDIR)$(UNITDIR)/$$(basename $$u .in) && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$(basename $$u .in) || exit 1; \
	done

clean:
	rm -rf $(BUILD)

-include $(wildcard $(BUILD)/*.d $(BUILD)/*/*.d)
