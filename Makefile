# corio: a thin front over cmake, ctest, busted and luacheck.
# Every target works from a fresh Debian/Ubuntu clone: `deps` installs what is missing.
#
#   make            build (build/corio/core.so, build/bin/corio)
#   make run        run examples/tour.lua with the corio command
#   make test       C tests, specs, luacheck, examples, luarocks install check
#   make test-asan  C tests and specs against an ASan+UBSan build (build-asan/)
#   make test-tsan  the C tests that post from threads, under ThreadSanitizer (build-tsan/)
#   make bench      benchmark table against the peers in ../shared/bench-peers
#   make docs       the documentation as HTML in docs/site/ (LDoc, from docs/*.md)
#   make install PREFIX=/usr/local   the command, libcorio, corio.h, corio.pc, the CMake package
#   make test-valgrind  memcheck over the C tests (leak check on) and part of the specs
#   make fuzz       each libFuzzer target in spec/fuzz/ for FUZZ_SECS (default 60) seconds,
#                   FUZZ_JOBS (default 2) at a time
#   make soak       the long-running checks in spec/soak/ (not in CI; see RELIABILITY.md)
#   make test-shuffle | test-gc | test-modes-full   the specs under the runtime's test
#                   modes: shuffled batches, collector stress (docs/testing.md)
#   make test-fault libuv fault injection: the k-th request of a kind fails (build-fault/)
#   make lint | clean | deps | bench-deps

BUILD      = build
ASAN_BUILD = build-asan
TSAN_BUILD = build-tsan
JOBS       = 2
PREFIX     = /usr/local
MAKEFLAGS += --no-print-directory
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

DEPS       = cmake gcc make pkg-config liblua5.4-dev lua5.4 libuv1-dev \
             lua-busted luarocks lua-check netcat-openbsd redis-tools wrk curl libedit-dev \
             libssl-dev openssl redis-server lua-redis lua-socket
DOCS_DEPS  = lua-ldoc lua-discount lua5.4
BENCH_DEPS = python3-uvloop lua-luv lua-cqueues time nodejs nginx
VALGRIND_DEPS = valgrind
FUZZ_DEPS  = clang libclang-rt-14-dev
FUZZ_BUILD = build-fuzz
FUZZ_SECS  = 60
FUZZ_JOBS  = 2
FAULT_BUILD = build-fault

# $(call apt_install,PKGS): install those of PKGS that dpkg does not have installed.
# apt-get update runs only when something is missing, so a warm machine stays offline.
apt_install = missing=; \
	for p in $(1); do \
	  dpkg -s $$p 2>/dev/null | grep -q '^Status: install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  command -v apt-get >/dev/null || { echo "missing:$$missing (no apt-get: install by hand)"; exit 1; }; \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

.PHONY: all build deps bench-deps docs run test test-asan test-tsan bench lint clean install
.PHONY: valgrind-deps test-valgrind fuzz-deps fuzz soak test-fault
.PHONY: test-shuffle test-gc test-modes-full

all: build

deps:
	@$(call apt_install,$(DEPS))

bench-deps: deps
	@$(call apt_install,$(BENCH_DEPS))

build: deps
	cmake -S . -B $(BUILD)
	cmake --build $(BUILD) -j$(JOBS)

docs:
	@$(call apt_install,$(DOCS_DEPS))
	rm -rf docs/site
	lua5.4 docs/c_api.lua c/include/corio.h > docs/c-api.md
	ldoc -c docs/config.ld .
	lua5.4 docs/site_links.lua docs/site

run: build
	$(BUILD)/bin/corio examples/tour.lua

test: build
	cd $(BUILD) && ctest --output-on-failure
	CORIO_BIN=$(CURDIR)/$(BUILD)/bin/corio busted
	luacheck .
	if [ -f spec/examples.sh ]; then sh spec/examples.sh $(BUILD)/bin/corio; fi
	$(BUILD)/bin/corio spec/docs_check.lua
	lua5.4 docs/c_api.lua --check c/include/corio.h docs/c-api.md
	sh spec/luarocks_check.sh
	sh spec/install_check.sh $(BUILD)
	sh examples/host/test.sh $(BUILD)

# Specs that run the command can take it from $CORIO_BIN (the build under test).
# lua5.4 is not built with ASan, so the runtime is preloaded for the specs, and leak
# detection is off there (it would report Lua's own allocations at exit). The C tests
# are fully instrumented binaries and keep leak detection on.
test-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCORIO_SANITIZE=ON
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && ctest --output-on-failure
	CORIO_BIN=$(CURDIR)/$(ASAN_BUILD)/bin/corio \
	  LD_PRELOAD="$$(gcc -print-file-name=libasan.so)" ASAN_OPTIONS=detect_leaks=0 \
	  busted --run=asan

install: build
	cmake --install $(BUILD) --prefix "$(PREFIX)"

# The C tests where threads post (and the one that interrupts from a thread), under
# ThreadSanitizer; fewer posts than under make test (TSan is slow).
TSAN_TESTS = host_stress host_embed host_lifetime host_control
test-tsan: deps
	cmake -S . -B $(TSAN_BUILD) -DCORIO_TSAN=ON
	cmake --build $(TSAN_BUILD) -j$(JOBS) --target $(TSAN_TESTS)
	cd $(TSAN_BUILD) && CORIO_STRESS_POSTS=20000 TSAN_OPTIONS=halt_on_error=1 \
	  ctest --output-on-failure -R '^($(shell echo $(TSAN_TESTS) | tr ' ' '|'))$$'

# The C tests with leak check on, the specs named in spec/c/valgrind.sh with it off
# (Lua's own allocations at exit); any memcheck error fails. Runs the build/ binaries.
valgrind-deps: deps
	@$(call apt_install,$(VALGRIND_DEPS))

test-valgrind: valgrind-deps build
	sh spec/c/valgrind.sh $(BUILD)

# libFuzzer targets (spec/fuzz/fuzz_*.c) built with clang, ASan and UBSan in build-fuzz/;
# each runs FUZZ_SECS seconds from its seed corpus, FUZZ_JOBS at a time: `make fuzz FUZZ_SECS=600`.
fuzz-deps: deps
	@$(call apt_install,$(FUZZ_DEPS))

fuzz: fuzz-deps
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCORIO_FUZZ=ON -DCORIO_WERROR=OFF \
	  -DCORIO_BUILD_TESTS=OFF
	cmake --build $(FUZZ_BUILD) -j$(JOBS) --target $$(cd spec/fuzz && ls fuzz_*.c | sed 's/\.c$$//')
	sh spec/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECS) $(FUZZ_JOBS)

# Long-running checks (not in CI): 1000 TCP connections for 60 s, a server under
# ulimit -n 256, 100,000 timers, a process storm. Smaller: make soak SOAK_SECS=10 ...
soak: build
	sh spec/soak/run.sh $(BUILD)/bin/corio

# The specs under the runtime's test modes (spec/modes.sh; docs/testing.md, "Test
# modes of the runtime"). MODES_FAST: runtime specs about order and waiting,
# without their 100,000-task and random-mix cases, small enough for 20 seeds in
# CI; GC_SPECS: specs that finish in reasonable time with a full collection at
# every step.
# lua5.4 (busted) starts with the generational collector and the corio command
# with the incremental one, so the plain suite covers each in one of them;
# test-gc runs the other. SHUFFLE_SEEDS="1 2" names seeds instead of
# SHUFFLE_RUNS random ones.
MODES_FAST = spec/sleep_spec.lua spec/timeout_spec.lua spec/sync_spec.lua \
             spec/queue_spec.lua --filter-out=00,000 --filter-out=random.mix
GC_SPECS   = spec/future_spec.lua spec/cancel_spec.lua spec/coroutine_spec.lua \
             spec/deadlock_spec.lua spec/sleep_spec.lua spec/timeout_spec.lua \
             spec/sync_spec.lua spec/queue_spec.lua --filter-out=00,000
SHUFFLE_RUNS = 20
SHUFFLE_FULL_RUNS = 3

test-shuffle: build
	SHUFFLE_RUNS=$(SHUFFLE_RUNS) sh spec/modes.sh shuffle $(MODES_FAST)

test-gc: build
	sh spec/modes.sh gc $(GC_SPECS)
	sh spec/modes.sh incremental $(MODES_FAST)
	sh spec/modes.sh generational $(MODES_FAST)

# not in CI: the whole suite under each collector and SHUFFLE_FULL_RUNS seeds
test-modes-full: build
	sh spec/modes.sh incremental
	sh spec/modes.sh generational
	SHUFFLE_RUNS=$(SHUFFLE_FULL_RUNS) sh spec/modes.sh shuffle
# libuv fault injection (c/fault/fault.c, RELIABILITY.md): the command built with ASan and
# UBSan and its libuv calls wrapped; spec/fault/sweep.lua fails the k-th request of each
# kind in each scenario of spec/fault/scenarios.lua. FAULT_ONLY=tcp:write narrows it.
test-fault: deps
	cmake -S . -B $(FAULT_BUILD) -DCORIO_FAULT=ON -DCORIO_SANITIZE=ON -DCORIO_BUILD_TESTS=OFF
	cmake --build $(FAULT_BUILD) -j$(JOBS) --target corio
	lua5.4 spec/fault/sweep.lua $(FAULT_BUILD)/bin/corio

bench: bench-deps build
	bench/run.sh

lint: deps
	luacheck .

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD) $(FAULT_BUILD) build.luarocks
