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

bench: bench-deps build
	bench/run.sh

lint: deps
	luacheck .

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) build.luarocks
