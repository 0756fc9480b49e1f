# veilmesh: make (build), make test, make demo, make bench
BUILD   ?= build
CLANG   ?= clang
CC      ?= gcc
BPFTOOL ?= bpftool
ARCH    := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')

CFLAGS  ?= -O2 -g -Wall -Wextra -Wno-unused-parameter
CFLAGS  += -Iinclude -I$(BUILD) -Idataplane -Icontrolplane -D_GNU_SOURCE
LDLIBS  := -lxdp -lbpf -lelf -lz -lcrypto -lmnl
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -I$(BUILD) -Ibpf -Iinclude \
	-Wall -Wno-unused-function -Wno-address-of-packed-member

BPF_SRCS := $(wildcard bpf/*.bpf.c)
BPF_OBJS := $(patsubst bpf/%.bpf.c,$(BUILD)/%.bpf.o,$(BPF_SRCS))
SKELS    := $(patsubst bpf/%.bpf.c,$(BUILD)/%.skel.h,$(BPF_SRCS))
HDRS     := $(wildcard include/veil/*.h) $(wildcard bpf/lib/*.h) $(wildcard dataplane/*.h)

LIB_SRCS := $(wildcard dataplane/*.c)
LIB_OBJS := $(patsubst dataplane/%.c,$(BUILD)/lib/%.o,$(LIB_SRCS))
LIB      := $(BUILD)/libveil.a
KEYS_SRCS := $(wildcard controlplane/keys/*.c)
KEYS_OBJS := $(patsubst controlplane/keys/%.c,$(BUILD)/keys/%.o,$(KEYS_SRCS))
KEYS_LIB := $(BUILD)/libveilkeys.a

BINS := $(BUILD)/veil-gw $(BUILD)/veil-node $(BUILD)/veilctl $(BUILD)/veil-validator $(BUILD)/veil-registry $(BUILD)/veil-attest $(BUILD)/veil-bench-micro $(BUILD)/veil-hellogen $(BUILD)/veil-flood $(BUILD)/veil-gw-dpdk $(BUILD)/veil-fpgen $(BUILD)/veil-dns
TESTS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/test_*.c))

.PHONY: all deps test demo bench bench-quick deps-bench fuzz clean
FUZZERS := $(BUILD)/tests/fuzz_hello $(BUILD)/tests/fuzz_diff $(BUILD)/tests/fuzz_share $(BUILD)/tests/fuzz_evidence $(BUILD)/tests/fuzz_dns

all: deps-build $(BPF_OBJS) $(SKELS) $(LIB) $(BINS) $(TESTS) $(BUILD)/lab_pass.bpf.o $(BUILD)/tests/mapcount $(FUZZERS)

deps-build:
	@tools/deps.sh build
deps-test:
	@tools/deps.sh test

$(BUILD)/vmlinux.h:
	@mkdir -p $(BUILD)
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

$(BUILD)/%.bpf.o: bpf/%.bpf.c $(HDRS) $(BUILD)/vmlinux.h
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/lab_pass.bpf.o: tools/lab_pass.bpf.c $(BUILD)/vmlinux.h
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@
$(BUILD)/bench_base.bpf.o: tools/bench_base.bpf.c $(BUILD)/vmlinux.h
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/%.skel.h: $(BUILD)/%.bpf.o
	$(BPFTOOL) gen skeleton $< name $(subst -,_,$*) > $@.tmp && mv $@.tmp $@

$(BUILD)/lib/%.o: dataplane/%.c $(HDRS) $(SKELS)
	@mkdir -p $(BUILD)/lib
	$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	ar rcs $@ $^

$(BUILD)/keys/%.o: controlplane/keys/%.c $(wildcard controlplane/keys/*.h) | deps-build
	@mkdir -p $(BUILD)/keys
	$(CC) $(CFLAGS) -c $< -o $@

$(KEYS_LIB): $(KEYS_OBJS)
	ar rcs $@ $^

$(BUILD)/veil-gw: controlplane/veil-gw.c $(LIB) $(HDRS)
	$(CC) $(CFLAGS) $< $(LIB) $(LDLIBS) -o $@
$(BUILD)/veil-node: controlplane/veil-node.c $(LIB) $(HDRS)
	$(CC) $(CFLAGS) $< $(LIB) $(LDLIBS) -o $@

$(BUILD)/veil-bench-micro: tools/bench_micro.c tests/bpf_env.h tests/testlib.h $(LIB) $(HDRS) $(BUILD)/bench_base.bpf.o
	$(CC) $(CFLAGS) -Itests -DBASE_OBJ='"$(abspath $(BUILD))/bench_base.bpf.o"' $< $(LIB) $(LDLIBS) -lm -o $@

KEYS_LDLIBS := -ljson-c -lssl -lcrypto -ltss2-mu
$(BUILD)/veil-validator: controlplane/veil-validator.c $(KEYS_LIB)
	$(CC) $(CFLAGS) $< $(KEYS_LIB) $(KEYS_LDLIBS) -o $@
$(BUILD)/veil-registry: controlplane/veil-registry.c $(KEYS_LIB)
	$(CC) $(CFLAGS) $< $(KEYS_LIB) $(KEYS_LDLIBS) -o $@
$(BUILD)/veil-attest: images/attest/veil-attest.c $(KEYS_LIB)
	$(CC) $(CFLAGS) $< $(KEYS_LIB) $(KEYS_LDLIBS) -ltss2-esys -ltss2-tctildr -o $@

$(BUILD)/veilctl: tools/veilctl.c tools/replay.c $(LIB) $(HDRS)
	$(CC) $(CFLAGS) tools/veilctl.c tools/replay.c $(LIB) $(LDLIBS) -lpcap -o $@

DPDK_CFLAGS = $(shell pkg-config --cflags libdpdk 2>/dev/null)
DPDK_LIBS   = $(shell pkg-config --libs libdpdk 2>/dev/null)
DPDK_HDRS := $(wildcard dataplane/dpdk/*.h)
$(BUILD)/dpdk/%.o: dataplane/dpdk/%.c $(HDRS) $(DPDK_HDRS) | deps-build
	@mkdir -p $(BUILD)/dpdk
	$(CC) $(CFLAGS) -Idataplane/dpdk $(DPDK_CFLAGS) -c $< -o $@
$(BUILD)/veil-gw-dpdk: $(BUILD)/dpdk/veil-gw-dpdk.o $(BUILD)/dpdk/dp.o $(LIB)
	$(CC) $^ $(DPDK_LIBS) $(LDLIBS) -o $@

# veil-dns: the GeoDNS server (controlplane/dns/), its core also built into the fuzzer
DNS_SRCS := controlplane/dns/geo.c controlplane/dns/zone.c controlplane/dns/query.c
DNS_HDRS := $(wildcard controlplane/dns/*.h) controlplane/dns/centroids.inc include/veil/cookie.h
$(BUILD)/veil-dns: controlplane/dns/veil-dns.c $(DNS_SRCS) $(DNS_HDRS) $(LIB)
	$(CC) $(CFLAGS) controlplane/dns/veil-dns.c $(DNS_SRCS) $(LIB) $(LDLIBS) -lldns -lm -lpthread -o $@

$(BUILD)/veil-fpgen: tools/fpgen.c tests/testlib.h $(LIB) $(HDRS)
	$(CC) $(CFLAGS) $< $(LIB) $(LDLIBS) -lpcap -o $@

$(BUILD)/veil-hellogen: tools/hellogen.c
	$(CC) $(CFLAGS) $< -lssl -lcrypto -o $@

$(BUILD)/veil-flood: tools/flood.c tests/testlib.h $(LIB) $(HDRS)
	$(CC) $(CFLAGS) $< $(LIB) $(LDLIBS) -o $@

$(BUILD)/tests/mapcount: tests/mapcount.c
	@mkdir -p $(BUILD)/tests
	$(CC) $(CFLAGS) $< -lbpf -o $@

# libFuzzer targets (clang): the parser alone with ASan/UBSan, and the
# differential harness against the XDP program.
$(BUILD)/tests/fuzz_hello: tests/fuzz/fuzz_hello.c $(HDRS)
	@mkdir -p $(BUILD)/tests
	$(CLANG) -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude $< -o $@
$(BUILD)/tests/fuzz_share: tests/fuzz/fuzz_share.c controlplane/keys/shamir.c controlplane/keys/shamir.h
	@mkdir -p $(BUILD)/tests
	$(CLANG) -g -O1 -fsanitize=fuzzer,address,undefined -Icontrolplane $< controlplane/keys/shamir.c -lcrypto -o $@
$(BUILD)/tests/fuzz_evidence: tests/fuzz/fuzz_evidence.c controlplane/keys/attest.c controlplane/keys/attest.h
	@mkdir -p $(BUILD)/tests
	$(CLANG) -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Icontrolplane $< controlplane/keys/attest.c \
		-ljson-c -lssl -lcrypto -ltss2-mu -o $@
$(BUILD)/tests/fuzz_dns: tests/fuzz/fuzz_dns.c $(DNS_SRCS) $(DNS_HDRS)
	@mkdir -p $(BUILD)/tests
	$(CLANG) -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Icontrolplane $< $(DNS_SRCS) \
		-lldns -lm -lpthread -o $@
$(BUILD)/tests/fuzz_diff: tests/fuzz/fuzz_diff.c tests/bpf_env.h tests/testlib.h $(LIB) $(HDRS)
	@mkdir -p $(BUILD)/tests
	$(CLANG) -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer -Iinclude -I$(BUILD) -Idataplane -Itests $< $(LIB) $(LDLIBS) -o $@

# the equivalence test also drives the DPDK packet path (ring-backed ports)
$(BUILD)/tests/test_fastpath: tests/test_fastpath.c tests/testlib.h tests/bpf_env.h $(BUILD)/dpdk/dp.o $(LIB) $(HDRS)
	@mkdir -p $(BUILD)/tests
	$(CC) $(CFLAGS) -Itests -Idataplane/dpdk $(DPDK_CFLAGS) $< $(BUILD)/dpdk/dp.o $(LIB) $(DPDK_LIBS) -lrte_net_ring \
		$(LDLIBS) -o $@
$(BUILD)/tests/test_dns: tests/test_dns.c tests/testlib.h $(DNS_SRCS) $(DNS_HDRS)
	@mkdir -p $(BUILD)/tests
	$(CC) $(CFLAGS) -Itests $< $(DNS_SRCS) -lldns -lm -lpthread -o $@
$(BUILD)/tests/%: tests/%.c tests/testlib.h tests/bpf_env.h $(LIB) $(KEYS_LIB) $(HDRS)
	@mkdir -p $(BUILD)/tests
	$(CC) $(CFLAGS) -Itests $< $(LIB) $(KEYS_LIB) $(LDLIBS) -ljson-c -lssl -ltss2-mu -o $@

test: deps-test deps-bench all
	@tests/run.sh

demo: deps-test all
	@VEIL_DATAPLANE=$(or $(DATAPLANE),xdp) tools/lab.sh demo

fuzz: all
	@tests/fuzz.sh $${FUZZ_SECONDS:-300}

bench: deps-test deps-bench all
	@tools/bench.sh full

bench-quick: deps-test deps-bench all
	@tools/bench.sh quick

deps-bench:
	@tools/deps.sh bench

clean:
	rm -rf $(BUILD)
