# pg_gateway: PGXS build of the extension, plus the project's entry points:
#   make demo    install what is missing, build, install, and show the flow on a throwaway cluster
#   make test    the same set-up, then every suite (ctest, pg_regress, pgTAP, integration)
#   make bench   every benchmark in bench/, each writing its section of bench/RESULTS.md
#   make dist    the PGXN release archive pg_gateway-$(EXTVERSION).zip
EXTENSION  = pg_gateway
EXTVERSION = 0.7.0

MODULE_big = pg_gateway
CORE_SRCS  = $(sort $(wildcard src/core/*.cpp))
PG_SRCS    = $(sort $(wildcard src/pg/*.cpp))
OBJS       = $(CORE_SRCS:.cpp=.o) $(PG_SRCS:.cpp=.o)

DATA       = $(wildcard sql/pg_gateway--*.sql)
EXTRA_CLEAN = pg_gateway.control META.json pg_gateway-*.zip build build-fuzz build-asan results regression.diffs regression.out tmp_check log

# pg_regress suites: every sql/*.sql that is not an install or upgrade script. The schedule check
# in the test runner fails if a file here has no expected output.
REGRESS      = $(filter-out pg_gateway--%,$(notdir $(basename $(wildcard sql/*.sql))))
REGRESS_OPTS = --load-extension=pg_gateway

SHLIB_LINK += -lsodium -lcurl -lmicrohttpd -lstdc++
PG_CPPFLAGS += -DEXTVERSION=\"$(EXTVERSION)\" -isystem $(shell $(PG_CONFIG) --includedir-server 2>/dev/null)
PG_CXXFLAGS = -std=c++17 -Wall -Wextra -Werror
# Calls between the library's own functions may be inlined: nothing interposes them at load time.
PG_CXXFLAGS += -fno-semantic-interposition

# Rebuild objects whose headers changed (PGXS tracks only sources unless told to).
PG_CPPFLAGS += -MMD -MP
-include $(OBJS:.o=.d)
EXTRA_CLEAN += $(OBJS:.o=.d)

# Our code is C++; JIT bitcode for it buys nothing and would require clang at build time.
override with_llvm = no

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(PGXS),)
include $(PGXS)
endif

all: pg_gateway.control META.json

pg_gateway.control: pg_gateway.control.in Makefile
	sed 's/@EXTVERSION@/$(EXTVERSION)/g' $< > $@

META.json: META.json.in Makefile
	sed 's/@EXTVERSION@/$(EXTVERSION)/g' $< > $@

.PHONY: deps demo test unit fuzz bench dist bench-verify bench-crypto bench-sync bench-nexus bench-nexus-calls bench-middleware version check-cassert
deps:
	@bash scripts/install-deps.sh

demo: deps
	@bash scripts/demo.sh

test: deps
	@bash scripts/test.sh

version:
	@echo $(EXTVERSION)

# pg_regress and pgTAP against a PostgreSQL 15 built with --enable-cassert (freed memory is
# clobbered, so a use after free shows). Not part of make test: the first run builds PostgreSQL.
check-cassert:
	@bash scripts/check-cassert.sh

# Every bench/*.sh one after another under the test lock (BENCH_ONLY: a regex on their names).
bench: deps
	@bash scripts/bench.sh

# The PGXN release archive of HEAD (committed files only), checked by scripts/check-dist.py.
dist:
	@bash scripts/dist.sh

bench-verify: deps
	@flock -o /tmp/pg_gateway-test.lock bash bench/verify.sh  # one install at a time (see scripts/test.sh)

print-regress:
	@echo $(REGRESS)

bench-sync: deps
	@flock -o /tmp/pg_gateway-test.lock bash bench/sync.sh  # one install at a time (see scripts/test.sh)

bench-nexus: deps
	@flock -o /tmp/pg_gateway-test.lock bash bench/nexus.sh  # one install at a time (see scripts/test.sh)

bench-nexus-calls: deps
	@flock -o /tmp/pg_gateway-test.lock bash bench/nexus_calls.sh  # one install at a time (see scripts/test.sh)

bench-crypto: deps
	@flock -o /tmp/pg_gateway-test.lock bash bench/crypto.sh  # one install at a time (see scripts/test.sh)

bench-middleware: deps
	@flock -o /tmp/pg_gateway-test.lock bash bench/middleware.sh  # one install at a time (see scripts/test.sh)

# Longer fuzzing than make test's short run: FUZZ_SECONDS per target (default 300).
fuzz: deps
	@cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DGATEWAY_FUZZ=ON >/dev/null
	@for src in test/fuzz/*_fuzz.cpp; do \
	  t=$$(basename $$src .cpp); \
	  cmake --build build-fuzz --target $$t >/dev/null && mkdir -p build-fuzz/corpus/$$t && \
	  echo "==> $$t for $${FUZZ_SECONDS:-300}s" && \
	  build-fuzz/$$t -max_total_time=$${FUZZ_SECONDS:-300} build-fuzz/corpus/$$t test/fuzz/corpus/$${t%_fuzz} || exit 1; \
	done
