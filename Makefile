# sluice: durable job queue worker for OpenAI API calls.
#   make            build libsluice, sluice, sluice-mock (release, -O2)
#   make test       install missing packages, build with ASan+UBSan, run tests
#   make demo       install missing packages, run the end-to-end demo
#   make bench      benchmarks (figures only, never pass/fail)
#   make bench-scale  status, claim, idle worker at SCALE_JOBS (10M) jobs
#   make install    PREFIX=/usr/local DESTDIR=
PREFIX  ?= /usr/local
DESTDIR ?=
BUILD   ?= build
SAN     ?= 0
CC      ?= cc

LIB_PKGS    := sqlite3 libpq
WORKER_PKGS := sqlite3 libuv libcurl libcjson inih libmicrohttpd
MOCK_PKGS   := libmicrohttpd libcjson
TEST_PKGS   := cmocka libmicrohttpd
# libpq: libsluice's PostgreSQL backend (lib/pg/, through LIB_PKGS), the
# PostgreSQL test helpers and the baseline bench (tests/helpers/pg_*,
# bench/bench_pg_*).
PG_PKGS     := libpq
ALL_PKGS    := $(sort $(WORKER_PKGS) $(MOCK_PKGS) $(TEST_PKGS) $(PG_PKGS) zlib)

# sd_notify readiness and watchdog: USE_SYSTEMD=yes|no|auto (auto: when
# pkg-config finds libsystemd).
USE_SYSTEMD ?= auto
ifeq ($(USE_SYSTEMD),auto)
USE_SYSTEMD := $(shell pkg-config --exists libsystemd 2>/dev/null && echo yes || echo no)
endif
ifeq ($(USE_SYSTEMD),yes)
WORKER_PKGS += libsystemd
CPPFLAGS    += -DSL_HAVE_SYSTEMD
endif

pc_cflags = $(shell pkg-config --cflags $(1) 2>/dev/null)
pc_libs   = $(shell pkg-config --libs $(1) 2>/dev/null)

WARN     := -std=c11 -Wall -Wextra -Werror -Wformat=2 -Wno-missing-field-initializers \
            -Wno-format-truncation
CPPFLAGS += -D_GNU_SOURCE -Iinclude -Ilib -Iworker -Icli -Iweb -DSL_SOURCE_DIR=\"$(CURDIR)\"
ifeq ($(FUZZ),1)
# libFuzzer targets: clang, every object instrumented for coverage.
CC       := clang
WARN     += -Wno-unknown-warning-option
OPT      := -O1 -g -fsanitize=address,undefined,fuzzer-no-link \
            -fno-omit-frame-pointer -fno-sanitize-recover=undefined
SANLD    := -fsanitize=address,undefined
else ifeq ($(SAN),1)
OPT      := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
            -fno-sanitize-recover=undefined
SANLD    := -fsanitize=address,undefined
else
OPT      := -O2 -g
SANLD    :=
endif
ALL_CFLAGS = $(WARN) $(OPT) -fPIC -MMD -MP $(CFLAGS)

# One directory level below lib/ and worker/ (lib/sqlite/, worker/storm/, ...).
LIB_SRC     := $(wildcard lib/*.c lib/*/*.c)
LIB_OBJ     := $(LIB_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/migrations.o \
               $(BUILD)/gen/pg_migrations.o
MIGRATIONS  := $(sort $(wildcard migrations/[0-9][0-9][0-9][0-9]_*.sql))
PG_MIGRATIONS := $(sort $(wildcard migrations/pg/[0-9][0-9][0-9][0-9]_*.sql))
WORKER_SRC  := $(filter-out worker/main.c,$(wildcard worker/*.c worker/*/*.c))
WORKER_OBJ  := $(WORKER_SRC:%.c=$(BUILD)/%.o)
# The sluice command (cli/): main plus one file per command.
MAIN_SRC    := $(firstword $(wildcard cli/main.c worker/main.c))
CLI_SRC     := $(filter-out cli/main.c,$(wildcard cli/*.c))
CLI_OBJ     := $(CLI_SRC:%.c=$(BUILD)/%.o)
# The dashboard (web/): pages in the worker library, assets embedded.
WEB_SRC     := $(wildcard web/*.c)
WEB_ASSETS  := $(sort $(wildcard web/assets/*))
WORKER_OBJ  += $(WEB_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/assets.o
MOCK_SRC    := $(wildcard tests/mock/*.c)
MOCK_OBJ    := $(MOCK_SRC:%.c=$(BUILD)/%.o)
UNIT_BIN    := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))
HELPER_BIN  := $(patsubst tests/helpers/%.c,$(BUILD)/tests/helpers/%,$(wildcard tests/helpers/*.c))
BENCH_BIN   := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))
FUZZ_BIN    := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
EXAMPLE_BIN := $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))

LIBSLUICE_A  := $(BUILD)/libsluice.a
LIBSLUICE_SO := $(BUILD)/libsluice.so
LIBWORKER_A  := $(BUILD)/libsluice-worker.a
LIBCLI_A     := $(BUILD)/libsluice-cli.a
SLUICE       := $(BUILD)/sluice
MOCK         := $(BUILD)/sluice-mock

.PHONY: all deps test check tests demo bench bench-scale chaos valgrind fuzz fuzz-bins install uninstall clean
all: $(LIBSLUICE_A) $(LIBSLUICE_SO) $(SLUICE) $(MOCK) $(BUILD)/sluice.pc

# The PostgreSQL server programs (initdb, pg_ctl) live outside PATH on
# Debian: pg_config --bindir names the directory, else the newest
# /usr/lib/postgresql/*/bin.
PG_BINDIR_OK = { test -x "$$(pg_config --bindir 2>/dev/null)/pg_ctl" \
  || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; }
# Install missing Debian packages only when a pkg-config check fails.
deps:
	@pkg-config --exists $(ALL_PKGS) && command -v sqlite3 >/dev/null \
	  && command -v nghttpx >/dev/null && command -v wrk >/dev/null \
	  && command -v openssl >/dev/null && command -v clang >/dev/null \
	  && command -v curl >/dev/null && command -v groff >/dev/null \
	  && command -v chromium >/dev/null && command -v chromedriver >/dev/null \
	  && /usr/bin/python3 -c 'import selenium' 2>/dev/null \
	  && $(PG_BINDIR_OK) \
	  || deploy/install-deps.sh

# The directories too: a migration removed or renamed changes no file.
$(BUILD)/gen/migrations.c: $(MIGRATIONS) migrations tools/sql2c.sh
	@mkdir -p $(@D)
	tools/sql2c.sh $@ $(MIGRATIONS)

$(BUILD)/gen/pg_migrations.c: $(PG_MIGRATIONS) migrations/pg tools/sql2c.sh
	@mkdir -p $(@D)
	SQL2C_ARRAY=sl_pg_migrations tools/sql2c.sh $@ $(PG_MIGRATIONS)

$(BUILD)/gen/assets.c: $(WEB_ASSETS) tools/asset2c.sh
	@mkdir -p $(@D)
	tools/asset2c.sh $@ $(WEB_ASSETS)

$(BUILD)/web/%.o: web/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(call pc_cflags,$(WORKER_PKGS)) -c -o $@ $<

$(BUILD)/gen/%.o: $(BUILD)/gen/%.c
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(call pc_cflags,$(LIB_PKGS)) -c -o $@ $<

$(BUILD)/lib/%.o: lib/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(call pc_cflags,$(LIB_PKGS)) -c -o $@ $<

$(BUILD)/worker/%.o: worker/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(call pc_cflags,$(WORKER_PKGS)) -c -o $@ $<

$(BUILD)/cli/%.o: cli/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(call pc_cflags,$(WORKER_PKGS)) -c -o $@ $<

$(BUILD)/tests/mock/%.o: tests/mock/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(call pc_cflags,$(MOCK_PKGS)) -c -o $@ $<

$(LIBSLUICE_A): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

# The soname link lets a program built with -L$(BUILD) -lsluice run with
# LD_LIBRARY_PATH=$(BUILD) before make install (README, "From C").
$(LIBSLUICE_SO): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libsluice.so.0 $(SANLD) -o $@ $^ $(call pc_libs,$(LIB_PKGS))
	ln -sf libsluice.so $(@D)/libsluice.so.0

$(LIBWORKER_A): $(WORKER_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(LIBCLI_A): $(CLI_OBJ)
	@mkdir -p $(@D)
	@rm -f $@
	$(AR) rcs $@ $^

WORKER_LIBS = $(LIBCLI_A) $(LIBWORKER_A) $(LIBSLUICE_A) $(call pc_libs,$(WORKER_PKGS) $(LIB_PKGS)) -lm

$(SLUICE): $(MAIN_SRC:%.c=$(BUILD)/%.o) $(LIBCLI_A) $(LIBWORKER_A) $(LIBSLUICE_A)
	$(CC) $(SANLD) -o $@ $< $(WORKER_LIBS)

$(MOCK): $(MOCK_OBJ)
	$(CC) $(SANLD) -o $@ $^ $(call pc_libs,$(MOCK_PKGS)) -lm

$(BUILD)/tests/test_%: tests/unit/test_%.c $(LIBCLI_A) $(LIBWORKER_A) $(LIBSLUICE_A)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(call pc_cflags,$(WORKER_PKGS) $(TEST_PKGS) $(PG_PKGS)) \
	  $(SANLD) -o $@ $< $(WORKER_LIBS) $(call pc_libs,$(TEST_PKGS))

$(BUILD)/tests/helpers/%: tests/helpers/%.c $(LIBCLI_A) $(LIBWORKER_A) $(LIBSLUICE_A)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(call pc_cflags,$(WORKER_PKGS)) $(SANLD) -o $@ $< $(WORKER_LIBS)

# The PostgreSQL helpers and baseline speak raw libpq (the shorter stem
# wins over the generic rules).
$(BUILD)/tests/helpers/pg_%: tests/helpers/pg_%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(call pc_cflags,$(PG_PKGS)) $(SANLD) -o $@ $< $(call pc_libs,$(PG_PKGS))

$(BUILD)/bench/bench_pg_%: bench/bench_pg_%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(call pc_cflags,$(PG_PKGS)) $(SANLD) -o $@ $< $(call pc_libs,$(PG_PKGS)) -lm

# pg_lib also speaks libpq itself (reset, ANALYZE, commit and WAL marks).
$(BUILD)/bench/pg_lib: bench/pg_lib.c $(LIBCLI_A) $(LIBWORKER_A) $(LIBSLUICE_A)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(call pc_cflags,$(WORKER_PKGS) $(PG_PKGS)) $(SANLD) -o $@ $< $(WORKER_LIBS)

$(BUILD)/bench/%: bench/%.c $(LIBCLI_A) $(LIBWORKER_A) $(LIBSLUICE_A)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(call pc_cflags,$(WORKER_PKGS)) $(SANLD) -o $@ $< $(WORKER_LIBS)

$(BUILD)/fuzz/%: tests/fuzz/%.c $(LIBCLI_A) $(LIBWORKER_A) $(LIBSLUICE_A)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(call pc_cflags,$(WORKER_PKGS)) -fsanitize=fuzzer \
	  $(SANLD) -o $@ $< $(WORKER_LIBS)

fuzz-bins: $(FUZZ_BIN)

# Examples are producers: they link libsluice and SQLite only.
$(BUILD)/examples/%: examples/%.c $(LIBSLUICE_A)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(SANLD) -o $@ $< $(LIBSLUICE_A) $(call pc_libs,$(LIB_PKGS))

$(BUILD)/sluice.pc: deploy/sluice.pc.in
	@mkdir -p $(@D)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(shell sed -n 's/^#define SL_VERSION "\(.*\)"/\1/p' include/sluice.h)|g' $< > $@

# scale_build: tests/integration/scale_build.sh holds it to the library's
# journal.
tests: all $(UNIT_BIN) $(HELPER_BIN) $(EXAMPLE_BIN) $(BUILD)/bench/scale_build

# The release build first: -O2 sees warnings (-Werror) the sanitizer
# build does not, and `make demo` and `make install` use it.
test: deps
	$(MAKE) all
	$(MAKE) BUILD=build/san SAN=1 tests
	$(MAKE) BUILD=build/fuzz FUZZ=1 fuzz-bins
	tests/run.sh build/san

# Every unit test binary under valgrind (no sanitizers: build/valgrind).
valgrind: deps
	$(MAKE) BUILD=build/valgrind tests
	@rc=0; for t in build/valgrind/tests/test_*; do \
	  [ -x "$$t" ] || continue; \
	  if valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
	    --error-exitcode=9 "$$t" >"$$t.valgrind.log" 2>&1; then \
	    echo "PASS: $$t under valgrind"; \
	  else echo "FAIL: $$t under valgrind (see $$t.valgrind.log)"; rc=1; fi; \
	done; exit $$rc

# The long chaos run: 20,000 jobs, 40 rounds of SIGKILL (release build),
# then the torture run (everything on the journal at once) for 60 rounds,
# with full-disk episodes (the journal on a tmpfs that fills; needs root).
chaos: deps
	$(MAKE) tests
	SLUICE_BUILD=$(CURDIR)/$(BUILD) CHAOS_JOBS=$${CHAOS_JOBS:-20000} \
	  CHAOS_ROUNDS=$${CHAOS_ROUNDS:-40} bash tests/integration/chaos.sh
	SLUICE_BUILD=$(CURDIR)/$(BUILD) TORTURE_ROUNDS=$${TORTURE_ROUNDS:-60} \
	  TORTURE_JOBS_PER_ROUND=$${TORTURE_JOBS_PER_ROUND:-40} \
	  TORTURE_FULL_DISK=$${TORTURE_FULL_DISK:-1} \
	  bash tests/integration/torture.sh

# Each libFuzzer target for FUZZ_SECONDS (make test runs each briefly).
FUZZ_SECONDS ?= 120
fuzz: deps
	$(MAKE) BUILD=build/fuzz FUZZ=1 fuzz-bins
	tests/fuzz/run.sh build/fuzz $(FUZZ_SECONDS)

check: test

demo: deps
	$(MAKE) all
	deploy/demo.sh $(BUILD)

bench: deps
	$(MAKE) all $(BENCH_BIN)
	bench/run.sh $(BUILD)

# A journal of SCALE_JOBS (10M) jobs: status, claim and an idle worker
# against an empty journal (issue 14). Not part of bench or test.
bench-scale: deps
	$(MAKE) all $(BUILD)/bench/scale_probe $(BUILD)/bench/scale_build
	bench/scale.sh $(BUILD)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib \
	  $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	  $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man3 \
	  $(DESTDIR)$(PREFIX)/share/man/man5
	install -m 0755 $(SLUICE) $(DESTDIR)$(PREFIX)/bin/sluice
	install -m 0644 $(LIBSLUICE_A) $(DESTDIR)$(PREFIX)/lib/libsluice.a
	install -m 0755 $(LIBSLUICE_SO) $(DESTDIR)$(PREFIX)/lib/libsluice.so.0
	ln -sf libsluice.so.0 $(DESTDIR)$(PREFIX)/lib/libsluice.so
# sluice.h (producers) includes sluice_states.h; sluice_worker.h is the
# worker's side of the seam, for custom workers.
	install -m 0644 include/sluice.h include/sluice_states.h \
	  include/sluice_worker.h $(DESTDIR)$(PREFIX)/include/
# $(BUILD)/sluice.pc may predate this PREFIX: write the prefix now
	sed 's|^prefix=.*|prefix=$(PREFIX)|' $(BUILD)/sluice.pc \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/sluice.pc
	chmod 0644 $(DESTDIR)$(PREFIX)/lib/pkgconfig/sluice.pc
	install -m 0644 man/sluice.1 $(DESTDIR)$(PREFIX)/share/man/man1/sluice.1
	install -m 0644 man/libsluice.3 $(DESTDIR)$(PREFIX)/share/man/man3/libsluice.3
	install -m 0644 man/sluice.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/sluice.conf.5

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/sluice $(DESTDIR)$(PREFIX)/lib/libsluice.a \
	  $(DESTDIR)$(PREFIX)/lib/libsluice.so $(DESTDIR)$(PREFIX)/lib/libsluice.so.0 \
	  $(DESTDIR)$(PREFIX)/include/sluice.h $(DESTDIR)$(PREFIX)/lib/pkgconfig/sluice.pc \
	  $(DESTDIR)$(PREFIX)/include/sluice_states.h \
	  $(DESTDIR)$(PREFIX)/include/sluice_worker.h \
	  $(DESTDIR)$(PREFIX)/share/man/man1/sluice.1 \
	  $(DESTDIR)$(PREFIX)/share/man/man3/libsluice.3 \
	  $(DESTDIR)$(PREFIX)/share/man/man5/sluice.conf.5

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
