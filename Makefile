# orgmail: `make run` starts the service on the embedded default; `make test` runs every test.
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python

.PHONY: install run test system-deps clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

# Debian packages the real-component tests use (Dovecot). Installed only when missing.
system-deps:
	@bash scripts/system-deps.sh

run: install
	$(VENV)/bin/orgmail serve

test: install system-deps
	$(PY) -m pytest

# Removes the virtual environment only: ./data holds the database, the mail and the secret key.
clean:
	rm -rf $(VENV)
