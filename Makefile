# Two set-up commands from a fresh machine: `make demo` and `make test`.
# Both create .venv when it is missing. torch is pinned first to the CPU build so
# that the package's `torch>=2.6` is already satisfied (a bare `torch` would pull CUDA).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast lint format bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[all]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/fmlab reproduce --suite demo --out runs

test: $(STAMP) lint
	$(BIN)/python -m pytest -q --durations=15

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py --out bench.md --log bench.log

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache

# Screenshots of every report of a reproduce run (RUNS; made with the smoke suite when
# missing) at 1400 and 1920 px in headless Chromium (Debian: apt-get install -y chromium),
# into SHOTS, with a line per page: horizontal overflow, console errors, figure text size.
RUNS  ?= runs
SHOTS ?= $(RUNS)/screenshots
.PHONY: screenshots
screenshots: $(STAMP)
	test -d $(RUNS) || $(BIN)/fmlab reproduce --suite smoke --out $(RUNS)
	$(BIN)/python tools/report_check.py $(RUNS) --out $(SHOTS) --width 1400 --width 1920
