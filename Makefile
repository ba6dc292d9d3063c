# The two commands of the README. Everything else is in scripts/.
.PHONY: demo test venv bench doctor verify

VENV ?= .venv

venv:
	@bash scripts/venv.sh $(VENV)

demo: venv
	@bash scripts/demo.sh

test: venv
	@bash scripts/test.sh

bench: venv
	@bash scripts/bench.sh

# Against the running `make demo` (its environment is in var/demo.env).
doctor: venv
	@set -a; . var/demo.env; set +a; $(VENV)/bin/python manage.py doctor

verify: venv
	@set -a; . var/demo.env; set +a; $(VENV)/bin/python manage.py verify_tenants --all
