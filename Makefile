# One command per job; each sets up the local virtualenv (.venv) first when it is missing or out of date.
#   make figures                                   every notebook, default profile (offline, CPU)
#   make figures NB=02 PROFILE=smoke               a subset / another profile (smoke | default | paper | gpu)
#   make figures NB="01 02" SET="seeds=[0, 1] variants=['trained']"   override parameters (NAME=VALUE, Python
#                                                  literals; spaces inside quotes or brackets are kept)
#   make figures NB=03 FORCE=1                     rerun even when nothing changed
#   make test | make lint | make bench [QUICK=1] | make notebooks | make lab | make clean
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= default
NB ?= all
SET ?=
FORCE ?=
ENV_STAMP := $(VENV)/.rsae-env-done

.PHONY: env figures test lint bench notebooks lab clean distclean

env: $(ENV_STAMP)

$(ENV_STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $@

# NB and SET reach the runner untouched through the environment (quotes, spaces, lists of strings): splitting
# them with make's word functions or quoting them into the shell line would mangle values like ['trained'].
figures: export RSAE_NB = $(value NB)
figures: export RSAE_SET = $(value SET)
figures: export RSAE_PROFILE = $(value PROFILE)
figures: env
	$(PY) -m rsae_utils --profile "$$RSAE_PROFILE" --nb "$$RSAE_NB" --set-string "$$RSAE_SET" $(if $(FORCE),--force)

test: env
	$(PY) -m pytest

lint: env
	$(PY) -m ruff check rsae_utils notebooks tests benchmarks
	$(PY) -m ruff format --check rsae_utils notebooks/*.py tests benchmarks

# QUICK=1: every benchmark's --quick smoke run (seconds each; writes under build/, never the committed figures/).
bench: env
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b $(if $(QUICK),--quick) || exit 1; done

# Classic .ipynb copies of the percent-format notebooks (for Colab/Binder users who prefer them).
notebooks: env
	@mkdir -p build/ipynb
	@for f in notebooks/[0-9][0-9]_*.py; do \
	  $(VENV)/bin/jupytext --to ipynb --set-kernel python3 -o build/ipynb/$$(basename $${f%.py}).ipynb $$f; done

# JupyterLab for interactive exploration (not needed by figures or tests, so installed on first use).
lab: env
	@$(PY) -c "import jupyterlab" 2>/dev/null || $(PY) -m pip install -q jupyterlab
	$(VENV)/bin/jupyter lab notebooks

clean:
	rm -rf build .pytest_cache

distclean: clean
	rm -rf $(VENV)
