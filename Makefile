# Front door: every target installs what it needs first.
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS ?= 2
# make install: where to (PREFIX), and a staging root (DESTDIR, as usual)
PREFIX ?= /usr/local
DESTDIR ?=

DEPS_STAMP := $(BUILD)/.deps-ok

.PHONY: all build test unit e2e lint asan mutants demo examples bench fuzz clean deps install deb

all: build

deps: $(DEPS_STAMP)

$(DEPS_STAMP): scripts/install-deps
	./scripts/install-deps
	mkdir -p $(BUILD) && touch $@

$(BUILD)/build.ninja: CMakeLists.txt | $(DEPS_STAMP)
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: $(DEPS_STAMP) $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

# nubod, nubo, the systemd units, /etc/nubo's examples and the man pages
# (docs/ARCHITECTURE.md, "Installing"); the users and folders are the
# package's postinst's (packaging/postinst), or yours after make install.
install: build
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"

# The Debian package (CPack, prefix /usr) in $(BUILD)/packages-deb.
deb: build
	cd $(BUILD) && cpack -G DEB -B packages-deb

examples: build
	./scripts/package-notes $(BUILD)

test: build examples
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 900

unit: build
	cd $(BUILD) && ctest --output-on-failure -L unit

e2e: build examples
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -L e2e

lint: build
	./scripts/lint $(BUILD)

# The whole suite under ASan + UBSan; ASAN_TESTS="REGEX" runs only the
# tests whose names match (ctest -R; what CI runs: .ci/run).
asan: $(DEPS_STAMP)
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DNUBO_SANITIZE=ON
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	./scripts/package-notes $(ASAN_BUILD)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 \
	    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ctest --output-on-failure -j $(JOBS) \
	    $(if $(ASAN_TESTS),-R '$(ASAN_TESTS)')

# Guard mutations (tests/mutations/): each applied alone to a copy of the
# tree in build-mutants, rebuilt, its test run; exit 1 if one survived.
# MUTANTS="id …" runs those, MUTANTS="--rotate N" N of them (CI).
mutants: $(DEPS_STAMP)
	JOBS=$(JOBS) ./tests/mutations/run $(MUTANTS)

fuzz: $(DEPS_STAMP)
	CC=clang cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	./scripts/run-fuzz $(FUZZ_BUILD) 300

demo: build examples
	./scripts/demo $(BUILD)

bench: build examples
	./bench/run-all $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) build-mutants
