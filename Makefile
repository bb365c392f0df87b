# Kith: `make run` to serve on http://127.0.0.1:8000, `make test` to check everything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8000
# Most of the suite waits on servers and browsers: two processes, each taking whole modules (their servers
# start once per module), finish it in far less time. `make test TEST_WORKERS=` runs it in one process.
TEST_WORKERS ?= -n 2 --dist loadscope

.PHONY: run test lint format openapi migrate demo demo-move bench clean chromium vendor

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
	$(BIN)/lint-imports
	$(BIN)/pytest -p no:cacheprovider $(TEST_WORKERS) $(PYTEST_ARGS)

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

# While `make demo` runs: A's community 'makers' moves to B (README: "Moving a community").
demo-move: $(STAMP)
	$(BIN)/python -m server.demo move

bench: $(STAMP)
	$(BIN)/python bench/api_list.py

clean:
	rm -rf $(VENV) var kith.egg-info

# The browser tests drive Debian's Chromium (never a downloaded browser build).
chromium:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# Vendored front-end files come from the npm registry, pinned; `make vendor` refreshes them.
# Redoc stays on 2.x: 3.x reports usage to Redocly unless told not to, and Kith loads nothing that phones home.
HTMX_VERSION := 2.0.11
REDOC_VERSION := 2.5.4
AXE_VERSION := 4.14.1
vendor:
	rm -rf .vendor-tmp && mkdir .vendor-tmp
	cd .vendor-tmp && npm pack --silent htmx.org@$(HTMX_VERSION) redoc@$(REDOC_VERSION) axe-core@$(AXE_VERSION) >/dev/null
	tar -xzf .vendor-tmp/htmx.org-$(HTMX_VERSION).tgz -C .vendor-tmp package/dist/htmx.min.js package/LICENSE
	cp .vendor-tmp/package/dist/htmx.min.js web/static/js/htmx-$(HTMX_VERSION).min.js
	cp .vendor-tmp/package/LICENSE web/static/js/htmx-LICENSE
	rm -rf .vendor-tmp/package && tar -xzf .vendor-tmp/redoc-$(REDOC_VERSION).tgz -C .vendor-tmp \
		package/bundles/redoc.standalone.js package/bundles/redoc.standalone.js.LICENSE.txt package/LICENSE
	# Redoc's side menu shows a logo from its CDN; an empty data: image instead keeps readers' addresses here.
	sed 's#"https://cdn.redoc.ly/redoc/logo-mini.svg"#"data:,"#' .vendor-tmp/package/bundles/redoc.standalone.js \
		> web/static/js/redoc-$(REDOC_VERSION).standalone.js
	cp .vendor-tmp/package/bundles/redoc.standalone.js.LICENSE.txt web/static/js/redoc-THIRD-PARTY-LICENSES
	cp .vendor-tmp/package/LICENSE web/static/js/redoc-LICENSE
	rm -rf .vendor-tmp/package && tar -xzf .vendor-tmp/axe-core-$(AXE_VERSION).tgz -C .vendor-tmp package/axe.min.js package/LICENSE
	cp .vendor-tmp/package/axe.min.js tests/web/vendor/axe-$(AXE_VERSION).min.js
	cp .vendor-tmp/package/LICENSE tests/web/vendor/axe-LICENSE
	rm -rf .vendor-tmp
