# kube-annex — one non-recursive Makefile.
#
#   make            build/kube-annex
#   make check      install test deps, unit tests (ASan/UBSan), e2e tests
#   make demo       real control plane + namespaces, kube-annex at work
#   make analyze    clang static analyzer
#   make deb        build/deb/kube-annex_<version>_<arch>.deb (+ lintian)
#   make rpm        build/rpm/RPMS/<arch>/kube-annex-<version>-1.<arch>.rpm (+ rpmlint)
#   make install    binary, unit, example config, manual pages, RBAC files
#   V=1             show commands; WERROR=1 (set under CI) adds -Werror

PREFIX ?= /usr
SBINDIR ?= $(PREFIX)/sbin
SYSCONFDIR ?= /etc
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
SYSTEMDUNITDIR ?= $(shell $(PKG_CONFIG) --variable=systemdsystemunitdir systemd 2>/dev/null || echo /lib/systemd/system)
DESTDIR ?=
BUILD ?= build
CC ?= gcc
PKG_CONFIG ?= pkg-config
VERSION ?= $(shell cat VERSION 2>/dev/null || echo 0.0.0)

PKGS := libcurl libcjson yaml-0.1 libnftnl libmnl libnetfilter_conntrack libsystemd libmicrohttpd
PKG_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)

CFLAGS ?= -O2 -g
WARNINGS := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
	-Wno-unused-parameter -Wformat=2 -Wvla
ifneq ($(WERROR)$(CI),)
WARNINGS += -Werror
endif
override CPPFLAGS += -I. -D_GNU_SOURCE -DKUBE_ANNEX_VERSION=\"$(VERSION)\"
override CFLAGS += -std=gnu11 $(WARNINGS) $(PKG_CFLAGS) -MMD -MP

ifeq ($(V),1)
Q :=
else
Q := @
endif

# Every .c in a module folder is part of the program; agent/main.c is the
# only one left out of the unit-test link.
MODULES := lib kube model nft conntrack resolv systemd agent
SRCS := $(foreach m,$(MODULES),$(wildcard $(m)/*.c))
OBJS := $(SRCS:%.c=$(BUILD)/obj/%.o)
LIB_SRCS := $(filter-out agent/main.c,$(SRCS))

SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
SAN_OBJS := $(LIB_SRCS:%.c=$(BUILD)/san/%.o)
UNIT_SRCS := $(wildcard tests/unit/test-*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/test/%)

all: $(BUILD)/kube-annex

$(BUILD)/kube-annex: $(OBJS)
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/san/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC san  $<"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -O1 $(SAN) -c -o $@ $<

$(BUILD)/test/%: tests/unit/%.c $(SAN_OBJS)
	@mkdir -p $(dir $@)
	@echo "  CCLD    $@"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -O1 $(SAN) -o $@ $^ $(PKG_LIBS) \
		$(shell $(PKG_CONFIG) --libs cmocka)

# libFuzzer harnesses include the parsers' sources directly.
FUZZERS := decode kubeconfig lines resolv config
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_CORPUS_decode := tests/data/objects tests/data/k8s-1.20
FUZZ_CORPUS_kubeconfig := tests/data/kubeconfig tests/fuzz/seeds/kubeconfig
FUZZ_CORPUS_lines := tests/fuzz/seeds/lines
FUZZ_CORPUS_resolv := tests/fuzz/seeds/resolv
FUZZ_CORPUS_config := tests/fuzz/seeds/config
FUZZ_MAXLEN_decode := 16384
FUZZ_MAXLEN_kubeconfig := 8192
FUZZ_MAXLEN_lines := 4096
FUZZ_MAXLEN_resolv := 4096
FUZZ_MAXLEN_config := 8192

$(BUILD)/fuzz/fuzz-%: tests/fuzz/fuzz-%.c $(SRCS)
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	$(Q)$(FUZZ_CC) $(CPPFLAGS) -std=gnu11 $(WARNINGS) -g -O1 \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o $@ $< \
		$(shell $(PKG_CONFIG) --cflags --libs libcjson yaml-0.1)

define run_fuzzer
	@mkdir -p $(BUILD)/fuzz/corpus-$(1)
	@echo "  RUN     fuzz-$(1) for $(FUZZ_SECONDS) s"
	$(Q)$(BUILD)/fuzz/fuzz-$(1) $(BUILD)/fuzz/corpus-$(1) $(wildcard $(FUZZ_CORPUS_$(1))) \
		-max_total_time=$(FUZZ_SECONDS) -max_len=$(FUZZ_MAXLEN_$(1)) -print_final_stats=1 \
		2>$(BUILD)/fuzz/fuzz-$(1).log || { tail -40 $(BUILD)/fuzz/fuzz-$(1).log; exit 1; }
	@grep -h "number_of_executed_units" $(BUILD)/fuzz/fuzz-$(1).log

endef

fuzz:
	$(Q)scripts/install-deps.sh fuzz
	$(Q)$(MAKE) --no-print-directory $(FUZZERS:%=$(BUILD)/fuzz/fuzz-%)
	$(foreach f,$(FUZZERS),$(call run_fuzzer,$(f)))

deps:
	$(Q)scripts/install-deps.sh build

test-deps:
	$(Q)scripts/install-deps.sh test

unit: $(UNIT_BINS)
	$(Q)tests/run-unit.sh $(UNIT_BINS)

e2e: all
	$(Q)tests/e2e/run.sh

# Dependencies first, in their own make invocation: pkg-config must see
# the libraries before the compile flags are computed.
check:
	$(Q)scripts/install-deps.sh test
	$(Q)$(MAKE) --no-print-directory all unit
	$(Q)$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=10
	$(Q)$(MAKE) --no-print-directory e2e

demo:
	$(Q)scripts/install-deps.sh test
	$(Q)$(MAKE) --no-print-directory all
	$(Q)tests/demo.sh

analyze:
	$(Q)scripts/install-deps.sh build
	$(Q)command -v scan-build >/dev/null || scripts/install-deps.sh analyze
	$(Q)rm -rf $(BUILD)/analyze-obj
	$(Q)scan-build --status-bugs -disable-checker unix.Malloc -o $(BUILD)/analyze \
		$(MAKE) --no-print-directory \
		BUILD=$(BUILD)/analyze-obj CFLAGS="-O0 -g -DHASH_FUNCTION=HASH_BER" all

# The example configuration is installed only where none exists yet.
install: all
	install -D -m 0755 $(BUILD)/kube-annex $(DESTDIR)$(SBINDIR)/kube-annex
	install -D -m 0644 systemd/kube-annex.service $(DESTDIR)$(SYSTEMDUNITDIR)/kube-annex.service
	test -e $(DESTDIR)$(SYSCONFDIR)/kube-annex/config.yaml || \
		install -D -m 0644 systemd/config.yaml $(DESTDIR)$(SYSCONFDIR)/kube-annex/config.yaml
	install -D -m 0644 systemd/dns-direct.conf $(DESTDIR)$(DATADIR)/kube-annex/dns-direct.conf
	install -D -m 0644 deploy/rbac.yaml $(DESTDIR)$(DATADIR)/kube-annex/rbac.yaml
	install -D -m 0644 deploy/rbac-namespaced.yaml $(DESTDIR)$(DATADIR)/kube-annex/rbac-namespaced.yaml
	install -d $(DESTDIR)$(DATADIR)/kube-annex
	sed '1s|^#!/usr/bin/env bash$$|#!/bin/bash|' deploy/make-kubeconfig.sh \
		>$(DESTDIR)$(DATADIR)/kube-annex/make-kubeconfig.sh
	chmod 0755 $(DESTDIR)$(DATADIR)/kube-annex/make-kubeconfig.sh
	install -D -m 0644 doc/kube-annex.8 $(DESTDIR)$(MANDIR)/man8/kube-annex.8
	install -D -m 0644 doc/kube-annex.yaml.5 $(DESTDIR)$(MANDIR)/man5/kube-annex.yaml.5

# Packages are built from a copy of the tree under $(BUILD); their build
# dependencies are installed first (scripts/install-deps.sh deb|rpm).
deb:
	$(Q)scripts/install-deps.sh deb
	$(Q)scripts/package.sh deb $(BUILD)

rpm:
	$(Q)scripts/install-deps.sh rpm
	$(Q)scripts/package.sh rpm $(BUILD)

clean:
	rm -rf $(BUILD)

.PHONY: all deps test-deps unit fuzz e2e check demo analyze install deb rpm clean

-include $(OBJS:.o=.d) $(SAN_OBJS:.o=.d)

# make bench: performance figures on this machine (bench/run.sh; BENCH_QUICK=1: 1k Services)
$(BUILD)/bench/nft-cold: bench/nft-cold.c $(filter-out $(BUILD)/obj/agent/main.o,$(OBJS))
	$(Q)mkdir -p $(dir $@) && $(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $^ $(PKG_LIBS)
$(BUILD)/bench/conn: bench/conn.c
	$(Q)mkdir -p $(dir $@) && $(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $<
bench:
	$(Q)scripts/install-deps.sh bench
	$(Q)$(MAKE) --no-print-directory all $(BUILD)/bench/nft-cold $(BUILD)/bench/conn
	$(Q)BUILD=$(BUILD) bench/run.sh
.PHONY: bench
