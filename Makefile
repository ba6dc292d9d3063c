# The two commands of the README. Everything else is in scripts/.
.PHONY: demo test venv bench

VENV ?= .venv

venv:
	@bash scripts/venv.sh $(VENV)

demo: venv
	@bash scripts/demo.sh

test: venv
	@bash scripts/test.sh

bench: venv
	$(VENV)/bin/python bench/verify_fleet.py
	$(VENV)/bin/python bench/dashboard.py
	$(VENV)/bin/python bench/consent_latency.py
	$(VENV)/bin/python bench/import_preview.py
