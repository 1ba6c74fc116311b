# The two commands of the README. Each one does all set-up on a fresh Debian 12 machine.
#   make demo   set up, build, generate sample data, run a real job, show how to read it
#   make test   set up, build, run every test (ctest and pytest)
BUILD ?= build
CMAKE_FLAGS ?=
ifneq ($(CI),)
CMAKE_FLAGS += -DDLPREP_WERROR=ON
endif

.PHONY: setup build test unit pytest demo bench clean format

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

test: unit pytest

demo: build
	@bash scripts/demo.sh $(BUILD)

bench: build
	@.venv/bin/python -m pip install -q -r scripts/requirements-bench.txt
	@bash bench/run_all.sh $(BUILD)

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD)
