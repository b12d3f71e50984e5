# pgx-loop: `make demo` to see it work, `make test` to check it. Both install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/pgx-loop demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python bench/engine_eval.py
	$(BIN)/python bench/hooks_throughput.py
	$(BIN)/python bench/learning_cycle.py
	$(BIN)/python bench/learning_validity.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
