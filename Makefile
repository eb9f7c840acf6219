# Makefile - thin wrapper: setup (dependencies + FAISS cache), CMake build, tests, demo.
BUILD   ?= build
JOBS    ?= $(shell nproc)
PREFIX  ?= /usr/local
CMAKE_FLAGS ?=

.PHONY: all setup build test demo install asan bench clean fuzz wheel

all: build

setup:
	@bash tools/setup.sh >/dev/null

build:
	@prefix=$$(bash tools/setup.sh | tail -1) && \
	  cmake -S . -B $(BUILD) -DFAISS_ROOT="$$prefix" $(CMAKE_FLAGS) >/dev/null && \
	  cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

asan:
	$(MAKE) test BUILD=build-asan CMAKE_FLAGS="-DRAGCORE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug"

demo: build
	@bash tools/demo.sh $(BUILD)

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

# The Python package as a wheel (python/, scikit-build-core): one cp39-abi3 wheel whose
# extension module carries libragcore with FAISS linked in; installs with pip on Debian 12
# without build tools (docs/python.md lists the runtime libraries it loads).
wheel:
	@prefix=$$(bash tools/setup.sh | tail -1) && \
	  RAGCORE_FAISS_PREFIX="$$prefix" SKBUILD_BUILD_DIR=$(abspath $(BUILD))/python-wheel \
	  CMAKE_BUILD_PARALLEL_LEVEL=$(JOBS) \
	  python3 -m pip wheel --no-deps -q -w $(BUILD)/wheel ./python
	@ls $(BUILD)/wheel/ragcore-*.whl

bench: build
	@bash bench/run.sh $(BUILD)

# Fuzzing (tests/fuzz): installs clang + libFuzzer, then runs every target FUZZ_SECONDS each.
FUZZ_SECONDS ?= 60
fuzz:
	@bash tools/setup.sh --fuzz
	bash tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

clean:
	rm -rf $(BUILD) build-asan build-fuzz
