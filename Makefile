# orgmail: `make run` starts the service on the embedded default; `make test` runs every test.
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python

.PHONY: install run test lint system-deps clean web web-install web-types web-test

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

# The TypeScript client, React widgets and console (npm workspaces in web/; Node >= 20.19 and npm).
# `make web` builds them; the console lands in src/orgmail/console, which the service serves at /console/.
web-install: web/node_modules/.package-lock.json

web/node_modules/.package-lock.json: web/package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: install Node.js >= 20.19 to build the web console" >&2; exit 1; }
	cd web && npm ci --no-audit --no-fund
	touch $@

web: web-install
	cd web && npm run build

# After changing the API: regenerate web/packages/client/src/openapi.ts from the app's OpenAPI document.
web-types: install web-install
	cd web && npm run types:generate

# Generated types up to date, ESLint, typecheck, unit tests (Vitest), build, then the browser tests
# (playwright-core driving Debian's chromium against a real `orgmail serve` and SMTP relay).
web-test: install web-install
	cd web && npm run types:check && npm run lint && npm run typecheck && npm test && npm run build && npm run e2e

# Debian packages the real-component tests use (Dovecot, Postfix, swaks, chromium). Installed only when missing.
system-deps:
	@bash scripts/system-deps.sh

# `make run ARGS="--port 8030"` passes options on to `orgmail serve`.
run: install web
	$(VENV)/bin/orgmail serve $(ARGS)

# ruff (lint and format) and mypy on the Python side; ESLint runs in web-test.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Test files run in PYTEST_WORKERS processes (pytest-xdist), a whole file per process at a time.
PYTEST_WORKERS ?= 2

test: install system-deps lint
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile
	$(MAKE) web-test

# Removes the virtual environment and the web build outputs; ./data (database, mail, secret key) stays.
clean:
	rm -rf $(VENV) web/node_modules web/packages/*/dist src/orgmail/console
