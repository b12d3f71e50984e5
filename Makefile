# pgx-loop: `make demo` to see it work, `make test` to check it. Both install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test lint bench clean browser servers

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/pgx-loop demo

test: $(STAMP) browser servers
	$(BIN)/ruff check .
	$(BIN)/pytest -q -n auto --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python bench/engine_eval.py
	$(BIN)/python bench/hooks_throughput.py
	$(BIN)/python bench/learning_cycle.py
	$(BIN)/python bench/learning_validity.py
	$(BIN)/python bench/report_speed.py

# Headless Chromium for the report's browser test (Debian's package). Never fails the build:
# without it, that test is skipped and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		{ apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && \
		apt-get install -y -q chromium >/dev/null 2>&1; }; }; } || \
		echo "chromium not installed: the report browser test will be skipped"

# PostgreSQL (a real site database for the OMOP-in-place and replica tests) and a Java runtime (for
# Spark in local mode), from Debian's packages. Never fails the build: without them, those tests are
# skipped and say why.
servers:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v java >/dev/null 2>&1 || \
		{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		{ apt-get install -y -q postgresql openjdk-17-jre-headless >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && \
		apt-get install -y -q postgresql openjdk-17-jre-headless >/dev/null 2>&1; }; }; } || \
		echo "PostgreSQL or Java not installed: the PostgreSQL and Spark tests will be skipped"

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
