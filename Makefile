# The two commands of the README. Each one does all set-up on a fresh Debian 12 machine.
#   make demo   set up, build, generate sample data, run a real job, show how to read it
#   make test   set up, build, run every test (ctest and pytest)
BUILD ?= build
CMAKE_FLAGS ?=
ifneq ($(CI),)
CMAKE_FLAGS += -DDLPREP_WERROR=ON
endif

# The wheel is built by scikit-build-core from this CMake project in $(BUILD)/wheel (with
# the same flags as $(BUILD), so ccache shares their objects) and tested installed.
SKBUILD_ARGS = -C build-dir=$(BUILD)/wheel -C cmake.define.CMAKE_CXX_COMPILER=$(CXX_PATH)
# ccache would hash the build folder into objects with debug info; both folders compile
# the same sources with the same flags, so let them share.
export CCACHE_NOHASHDIR := true
# ccache also tells compilers apart by the name they are called by (c++ vs g++): both
# builds use the one CMake finds by default.
CXX_PATH := $(shell command -v $${CXX:-c++})
ifneq ($(CI),)
SKBUILD_ARGS += -C cmake.define.DLPREP_WERROR=ON
endif

.PHONY: setup build wheel wheel-repaired pkg-install test unit pytest pytest-pkg demo bench clean format \
        sanitize fuzz

setup:
	@bash scripts/setup.sh

build: setup
	@if [ ! -f $(BUILD)/build.ninja ]; then \
	  cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS); fi
	@ninja -C $(BUILD)

unit: build
	cd $(BUILD) && ctest --output-on-failure -j2

pytest: build
	DLPREP_BUILD=$(abspath $(BUILD)) .venv/bin/python -m pytest -q tests/python

wheel: setup
	@rm -f $(BUILD)/dist/dlprep-*.whl
	CMAKE_GENERATOR=Ninja .venv/bin/python -m pip wheel . --no-build-isolation --no-deps -q \
	  -w $(BUILD)/dist $(SKBUILD_ARGS)

# The wheel with the system libraries it links vendored (libsndfile, soxr, fftw, curl,
# yaml-cpp, ...; auditwheel renames them), so it installs where the Debian -dev packages
# are absent. pyarrow's Arrow libraries and libtorch stay outside: they come from the
# installed pyarrow and from the system (the TorchScript plugin is optional).
wheel-repaired: wheel
	@rm -rf $(BUILD)/dist-repaired
	PATH=$(CURDIR)/.venv/bin:$$PATH .venv/bin/auditwheel repair --plat manylinux_2_36_x86_64 \
	  -w $(BUILD)/dist-repaired --exclude 'libarrow*.so.*' --exclude 'libparquet.so.*' \
	  --exclude 'libtorch*.so*' --exclude 'libc10.so*' --exclude libdlprep.so \
	  $(BUILD)/dist/dlprep-*.whl

# The Python package's tests, against the wheel installed into .venv-pkg and run from
# outside the source tree.
pkg-install: wheel
	.venv-pkg/bin/python -m pip install -q --force-reinstall --no-deps $(BUILD)/dist/dlprep-*.whl

pytest-pkg: pkg-install
	cd $(BUILD) && DLPREP_SOURCE=$(CURDIR) DLPREP_BUILD=$(abspath $(BUILD)) \
	  $(CURDIR)/.venv-pkg/bin/python -m pytest -q -p no:cacheprovider $(CURDIR)/tests/python_pkg

test: unit pytest pytest-pkg

# The unit tests (ctest, without the integration test that installs the library) built
# with AddressSanitizer and UndefinedBehaviorSanitizer in build-asan/ (no libtorch). CI
# runs it after `make test`. Warnings are not errors here: GCC's -Wmaybe-uninitialized
# misfires on instrumented code (the normal build keeps -Werror in CI).
SANITIZE_BUILD ?= build-asan
sanitize: setup
	@if [ ! -f $(SANITIZE_BUILD)/build.ninja ]; then \
	  cmake -S . -B $(SANITIZE_BUILD) -G Ninja -DDLPREP_SANITIZE=ON -DDLPREP_BUILD_BENCH=OFF \
	    -DDLPREP_WITH_TORCH=OFF $(CMAKE_FLAGS) -DDLPREP_WERROR=OFF; fi
	@ninja -C $(SANITIZE_BUILD)
	cd $(SANITIZE_BUILD) && ARROW_DEFAULT_MEMORY_POOL=system \
	  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j2 -LE integration

# Every fuzz target for FUZZ_SECONDS (default 60) each, built with clang in build-fuzz/
# (scripts/fuzz.sh says more); fails when a target finds a crash, leak or UB.
fuzz: setup
	@bash scripts/fuzz.sh

demo: build pkg-install
	@bash scripts/demo.sh $(BUILD)

bench: build
	@.venv/bin/python -m pip install -q -r scripts/requirements-bench.txt
	@bash bench/run_all.sh $(BUILD)

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD)
