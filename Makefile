# unet-industrial: `make demo` and `make test` are the two set-up commands.
# Each installs the Debian packages that are missing (quietly, once), then
# configures and builds with CMake + Ninja in build/.

BUILD_DIR   ?= build
JOBS        ?= $(shell nproc)
# The complete list for a fresh Debian 12 with only make and git: packages are
# installed with --no-install-recommends, so a package that another one only
# recommends is named here (oneDNN's CMake config requires OpenCL, which
# libdnnl-dev merely recommends). `.ci/run` proves the list in a fresh root.
BUILD_DEPS  := cmake ninja-build g++ pkg-config libdnnl-dev ocl-icd-opencl-dev libpng-dev libcli11-dev \
               nlohmann-json3-dev libsnappy-dev libgtest-dev libbenchmark-dev \
               libonnx-dev libprotobuf-dev protobuf-compiler libopencv-dev libcpp-httplib-dev \
               libopenmpi-dev openmpi-bin libturbojpeg0-dev libtiff-dev libmagickcore-6.q16-dev pybind11-dev \
               python3-dev
# What only `make test` needs: the server's tests drive it with curl, with
# NVIDIA's Python client (pip, in a virtual environment under build/) and
# with headless Chromium; the image-format tests convert real images with
# ImageMagick and Pillow (tools that are not ours); the Python module's
# tests run on pytest and NumPy.
TEST_DEPS   := curl python3 python3-venv chromium imagemagick python3-pil python3-numpy python3-pytest
BENCH_DEPS  := libtorch-dev
# `make fuzz`: libFuzzer comes with clang's runtime; clang's OpenMP is libomp.
FUZZ_DEPS   := clang-14 libclang-rt-14-dev libomp-14-dev python3
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CLI         := $(BUILD_DIR)/bin/unet-industrial

# The checking builds (docs/reliability.md), each in its own directory and
# without CUDA: `make test-sanitize` runs the suite under AddressSanitizer and
# UndefinedBehaviorSanitizer; `make fuzz [FUZZ_SECONDS=N] [FUZZERS="png npy"]`
# builds tests/fuzz's harnesses with clang and runs each for N seconds,
# JOBS of them at a time.
SANITIZE_DIR ?= build-sanitize
FUZZ_DIR     ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZERS      ?=
# Any report fails the test that met it; leaks are reported at exit.
SANITIZE_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:check_initialization_order=1 \
                UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
                LSAN_OPTIONS=suppressions=$(CURDIR)/tests/sanitize/lsan.supp:print_suppressions=0

.PHONY: all deps test-deps build test check-pip-install demo bench bench-peers clean test-sanitize fuzz

all: build

# Installs only what dpkg does not already have; silent when all is present.
define install_missing
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing missing packages: $$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

deps:
	$(call install_missing,$(BUILD_DEPS))

test-deps:
	$(call install_missing,$(TEST_DEPS))

$(BUILD_DIR)/build.ninja: | deps
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release

build: deps $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: test-deps build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 900

# `pip install .` in a fresh virtual environment under build/, then the
# installed module against predict. Needs PyPI (scikit-build-core, NumPy)
# and compiles the library once more, so it is not part of `make test`.
check-pip-install: test-deps build
	CMAKE_BUILD_PARALLEL_LEVEL=$(JOBS) python3 scripts/check_pip_install.py $(BUILD_DIR) .

# -O1 -g1, as AddressSanitizer's documentation advises: at -O2 -g the
# sanitized compile took 3.5x a normal one, at -O1 with line tables 2.1x,
# and the reports keep their file:line stacks.
test-sanitize: test-deps deps
	cmake -S . -B $(SANITIZE_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DUNETIND_SANITIZE=ON -DUNETIND_WITH_CUDA=OFF \
	  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG"
	cmake --build $(SANITIZE_DIR) -j $(JOBS)
	cd $(SANITIZE_DIR) && $(SANITIZE_ENV) ctest --output-on-failure -j $(JOBS) --timeout 1800

fuzz: deps
	$(call install_missing,$(FUZZ_DEPS))
	cmake -S . -B $(FUZZ_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 \
	  -DUNETIND_FUZZ=ON -DUNETIND_WITH_CUDA=OFF -DUNETIND_WITH_ONNX=OFF
	cmake --build $(FUZZ_DIR) -j $(JOBS) --target fuzzers
	FUZZ_JOBS=$(JOBS) tests/fuzz/run_fuzzers.sh $(FUZZ_DIR) $(FUZZ_SECONDS) $(FUZZERS)

demo: build
	$(CLI) demo

bench: deps
	$(call install_missing,$(BENCH_DEPS))
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release -DUNETIND_BUILD_BENCH=ON
	cmake --build $(BUILD_DIR) -j $(JOBS)
	@echo "run: $(BUILD_DIR)/bin/bench_vs_libtorch --mode both --threads 2"
	@echo "     $(BUILD_DIR)/bin/bench_concat [--batch=8] [--precision=bf16]"

# Same-run speed against OpenVINO, ONNX Runtime and PyTorch 2 (bench/peers.py).
# The engines come from PyPI into a virtual environment under the build
# directory (several GB: torch's wheel brings CUDA libraries); the product
# and `make test` never need them.
PEERS_VENV := $(BUILD_DIR)/peers-venv
bench-peers: build
	$(call install_missing,python3 python3-venv)
	@[ -x $(PEERS_VENV)/bin/python ] || python3 -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install --quiet --disable-pip-version-check -r bench/requirements-peers.txt
	$(PEERS_VENV)/bin/python bench/peers.py --cli $(CLI) --json $(BUILD_DIR)/peers.json $(PEERS_ARGS)

clean:
	rm -rf $(BUILD_DIR) $(SANITIZE_DIR) $(FUZZ_DIR)
