# Kith: `make run` to serve on http://127.0.0.1:8000, `make test` to check everything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint format openapi migrate demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

run: $(STAMP)
	$(BIN)/kith migrate
	$(BIN)/kith serve --host $(HOST) --port $(PORT)

migrate: $(STAMP)
	$(BIN)/kith migrate

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

openapi: $(STAMP)
	$(BIN)/python -m server.openapi_export openapi/openapi.json

demo: $(STAMP)
	$(BIN)/python -m server.demo

bench: $(STAMP)
	$(BIN)/python bench/api_list.py

clean:
	rm -rf $(VENV) var kith.egg-info
