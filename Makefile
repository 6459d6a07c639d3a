# Switchboard. `make run` and `make test` each work alone on a fresh machine: they create
# .venv when it is missing and install what they need into it.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8501
PLUGINS ?= $(SWITCHBOARD_PLUGINS)

.PHONY: run test lint format bench compiled fuzz clean

$(VENV)/.runtime: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt $(VENV)/.runtime
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# PLUGINS=mod1,mod2: modules that register agent roles (docs/agents.md), imported at start.
run: $(VENV)/.runtime
	SWITCHBOARD_PLUGINS="$(PLUGINS)" $(PY) -m streamlit run app.py --server.address $(HOST) --server.port $(PORT) \
		--browser.gatherUsageStats false

test: lint
	git ls-files -z '*.ipynb' | xargs -0 -r $(VENV)/bin/nbstripout --verify
	$(PY) -m pytest -n 2 -m "not browser"
	# The browser tests run alone: they wait on a real page, which CPU-heavy tests beside
	# them can slow past their timeouts.
	$(PY) -m pytest -m browser

# Generated scenarios over every protocol, policy and fault against the oracle of
# tests/test_properties.py, with a fresh random seed each time (make test runs 80 fixed
# ones). FUZZ_EXAMPLES=10000 make fuzz for a longer hunt.
FUZZ_EXAMPLES ?= 2000
fuzz: $(VENV)/.dev
	SWITCHBOARD_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -p no:cacheprovider --timeout 0 \
		tests/test_properties.py -q

# Style, the architecture's import contracts (pyproject.toml) and the types of sim/ and
# protocols/.
lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

format: $(VENV)/.dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The hot path's modules compiled with mypyc into .compiled/ (protocols/compiled.py): used
# in place of their source while current; SWITCHBOARD_COMPILED=0 ignores them.
compiled: $(VENV)/.dev
	$(PY) -m bench.compile

bench: compiled
	$(PY) -m bench

clean:
	rm -rf $(VENV) .compiled .pytest_cache .ruff_cache runs test-artifacts
