# One task runner; CI calls these targets verbatim.
.PHONY: install lint services test bench demo

VENV ?= .venv
PY := $(VENV)/bin/python

install:
	bash scripts/install.sh

lint:
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy
	$(PY) scripts/check_layers.py   # arrows point down the layer map, no import circles

# PostgreSQL, Redis, RabbitMQ and Chromium for the tests, started or installed when absent.
services:
	bash scripts/services.sh

# pytest exits 5 when it collected no test: that is a failure here.
test: services
	$(VENV)/bin/pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests were collected" >&2; exit 1; fi; exit $$rc

bench:
	$(PY) -m bench

demo:
	$(VENV)/bin/ragcast process ../shared/data/clip01.flac
