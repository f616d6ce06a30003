# Clawback - top-level build.  See README.md for the two everyday commands.
#
#   make deps    install every Debian package the project needs (idempotent)
#   make         build everything into build/bin/
#   make test    unit and integration tests (T=record runs one module's unit tests)
#   make bench   benchmarks (figures go to stdout)
#   make asan    build and test under AddressSanitizer + UndefinedBehaviorSanitizer
#   make run     start Redis (if none is configured) and every daemon in the foreground

BUILD   ?= build
CC      ?= cc
PKGS    := libczmq libzmq msgpack hiredis libcurl inih uuid libcrypto gmime-3.0 libxml-2.0 libidn2 libpsl jansson
SAN     ?=
OPT     ?= -O2

CFLAGS  := -std=c11 -D_GNU_SOURCE $(OPT) -g -Wall -Wextra -Werror -Wshadow \
           -Wstrict-prototypes -Wmissing-prototypes -MMD -MP -Icommon -Iremediator -Imilter \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(SAN) $(EXTRA_CFLAGS)
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread
LDFLAGS := $(SAN)

COMMON_SRC  := $(wildcard common/*.c)
COMMON_OBJ  := $(COMMON_SRC:%.c=$(BUILD)/obj/%.o)
LIBCOMMON   := $(BUILD)/lib/libclawback.a
# the remediator's parts (its mailbox back-ends) without main, for its unit tests
REMEDIATOR_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(filter-out remediator/main.c,$(wildcard remediator/*.c)))
LIBREMEDIATOR  := $(BUILD)/lib/libremediator.a
# the milter's spool and indexer (without main and the libmilter glue), for its unit tests
MILTER_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(filter-out milter/main.c milter/milter.c,$(wildcard milter/*.c)))
LIBMILTER  := $(BUILD)/lib/libmilter-spool.a
# libmilter linked statically, its sigwait wrapped (milter/milter.c says why)
LDLIBS_milter := -Wl,--wrap=sigwait -l:libmilter.a

DAEMONS     := poller enricher remediator logger milter
DAEMON_BINS := $(DAEMONS:%=$(BUILD)/bin/clawback-%)
CLI_SRC     := $(wildcard cli/*.c)
CLI_BIN     := $(BUILD)/bin/clawback
TOOL_SRC    := $(wildcard tests/tools/*.c)
TOOL_BINS   := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tests/%)
UNIT_SRC    := $(wildcard tests/unit/test_*.c)
UNIT_BINS   := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
BENCH_SRC   := $(wildcard bench/*.c)
BENCH_BINS  := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

ALL_OBJ := $(COMMON_OBJ) $(foreach d,$(DAEMONS),$(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard $(d)/*.c))) \
           $(CLI_SRC:%.c=$(BUILD)/obj/%.o) $(TOOL_SRC:%.c=$(BUILD)/obj/%.o) \
           $(UNIT_SRC:%.c=$(BUILD)/obj/%.o) $(BENCH_SRC:%.c=$(BUILD)/obj/%.o)

.PHONY: all deps test unit integration bench asan run clean
all: $(DAEMON_BINS) $(CLI_BIN) $(TOOL_BINS) $(UNIT_BINS) $(BENCH_BINS)

deps:
	@deploy/install-deps.sh

# V=1 shows the full commands
Q := $(if $(V),,@)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC    $<")
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

$(LIBCOMMON): $(COMMON_OBJ)
	@mkdir -p $(@D)
	$(Q)$(AR) rcs $@ $^

$(LIBREMEDIATOR): $(REMEDIATOR_OBJ)
	@mkdir -p $(@D)
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(LIBMILTER): $(MILTER_OBJ)
	@mkdir -p $(@D)
	$(Q)rm -f $@ && $(AR) rcs $@ $^

# one link rule per daemon directory: build/bin/clawback-<dir> from <dir>/*.c
define DAEMON_RULE
$(BUILD)/bin/clawback-$(1): $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard $(1)/*.c)) $(LIBCOMMON)
	@mkdir -p $$(@D)
	@$$(if $$(Q),echo "  LD    $$@")
	$$(Q)$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS_$(1)) $$(LDLIBS)
endef
$(foreach d,$(DAEMONS),$(eval $(call DAEMON_RULE,$(d))))

$(CLI_BIN): $(CLI_SRC:%.c=$(BUILD)/obj/%.o) $(LIBCOMMON)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/test_%: $(BUILD)/obj/tests/unit/test_%.o $(LIBMILTER) $(LIBREMEDIATOR) $(LIBCOMMON)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

$(BUILD)/tests/%: $(BUILD)/obj/tests/tools/%.o $(LIBREMEDIATOR) $(LIBCOMMON)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# the benchmark's do-nothing milter (bench/milter.sh) links libmilter as clawback-milter does
$(BUILD)/bench/null_milter: LDLIBS += -l:libmilter.a

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(LIBCOMMON)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# `make test` installs what it needs first, so a fresh machine needs nothing else.
test: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) tests/run.sh $(T)

asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" all
	@BUILD=build-asan ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 tests/run.sh $(T)

bench: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) bench/run.sh

run: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) deploy/run.sh

clean:
	rm -rf build build-asan

-include $(ALL_OBJ:.o=.d)
