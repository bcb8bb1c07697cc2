# labctl: two commands do everything, each with its own set-up.
#   make lab-up   bring up ./lab.yaml and show its checks passing
#   make test     unit and integration tests on the real engine
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LABCTL := $(BIN)/labctl
PYTEST_ARGS ?=

.PHONY: lab-up lab-down lab-check test unit integration env browser doctor image clean bench

# The virtual environment, rebuilt when the package's dependencies change: labctl with
# its extras, and the developers' tools from the `dev` dependency group (which needs pip
# 25.1 or later, so pip goes first).
# The distribution was called `labctl` before it took its own name; an old one goes first.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade 'pip>=25.1'
	$(BIN)/pip uninstall --quiet --yes labctl 2>/dev/null || true
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[ssh,graph,ui]' --group dev
	touch $@

# Docker engine, Compose v2 and the image bootstrapper: installed and started if missing.
env: $(BIN)/.installed
	$(LABCTL) doctor --install --quiet

# Headless Chromium for the tests that open labctl's pages: Debian's, since no browser
# download is made (Playwright drives it; it never fetches one of its own).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }

doctor: $(BIN)/.installed
	$(LABCTL) doctor

image: env
	$(LABCTL) image build

lab-up: env
	$(LABCTL) up
	$(LABCTL) check

lab-check: $(BIN)/.installed
	$(LABCTL) check

lab-down: $(BIN)/.installed
	$(LABCTL) down

# The import contracts and the types first: a layer importing one above it, or a type
# that does not fit, fails in seconds.
# The unit tests share no engine, so two run at a time (pytest-xdist); the rest take turns
# on the one engine.
test: env browser
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(MAKE) --no-print-directory docs
	$(BIN)/pytest $(PYTEST_ARGS) -n 2 tests/unit
	$(BIN)/pytest $(PYTEST_ARGS) tests --ignore=tests/unit examples lab.yaml

unit: $(BIN)/.installed
	$(BIN)/lint-imports
	$(BIN)/pytest $(PYTEST_ARGS) tests/unit

integration: env browser
	$(BIN)/pytest $(PYTEST_ARGS) tests/integration

# The documentation site, into build/site. --strict fails on a broken link or anchor, a page
# left out of the nav, or a generated page (the CLI reference, the exit codes) that cannot be
# made from the code. The variable only silences the theme's notice about its future.
.PHONY: docs
docs: $(BIN)/.installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# The pages' front-end libraries, into labctl/ui/static/vendor/ (committed, shipped in the
# wheel): the exact versions ui/package-lock.json pins, installed by npm without running
# any package's scripts. Only needed to change a version.
.PHONY: vendor
vendor:
	sh ui/vendor.sh

clean:
	rm -rf $(VENV) compose/*.yaml .labctl .pytest_cache build dist *.egg-info

bench: env
	$(BIN)/python bench/checks.py
	$(BIN)/python bench/impairments.py
	$(BIN)/python bench/floor.py $(BENCH_FLOOR_ARGS)
	$(BIN)/python bench/rounds.py chat 20
	$(BIN)/python bench/grade.py
	$(BIN)/python bench/ui.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/scale.py --swarm --servers 30 --clients 30 --octet 214

# A long fuzz run of the lab-file reader: 10,000 hostile inputs, each accepted or refused
# in one line within 2 seconds and 200 MB; prints its counts, fails on a crash or a slow one.
.PHONY: fuzz
fuzz: $(BIN)/.installed
	$(BIN)/python tests/fuzz/run.py
