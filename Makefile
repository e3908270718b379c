# Thin wrapper: every target calls python -m stroke_lib (or pytest) in a virtual environment.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= auto
# make book FORCE=1 re-executes every chapter (otherwise only those whose inputs changed)
FORCE ?=
STAMP := $(VENV)/.installed

.PHONY: install book html test cohort chapter benchmarks clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# torch is installed first, pinned, so no other requirement pulls a CUDA build.
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

book: install
	$(PY) -m stroke_lib book --profile $(PROFILE) $(if $(filter-out 0 no false,$(FORCE)),--force) $(PARAMS)

# HTML from the chapters already executed into book/chapters (after make book or make chapter)
html: install
	$(PY) -m stroke_lib html

test: install
	$(PY) -m pytest

cohort: install
	$(PY) -m stroke_lib cohort --profile $(PROFILE)

# every benchmark, each writing its record into benchmarks/records (the appendix reads them)
benchmarks: install
	for b in training_loop models_speed mamba_scan loaders cohort_generation disk_cache; do $(PY) benchmarks/$$b.py || exit 1; done

# make chapter NAME=01_evaluation PARAMS="-p profile full -p seed 1"
chapter: install
	$(PY) -m stroke_lib chapter $(NAME) $(PARAMS)

clean:
	rm -rf book/_build book/chapters/*.ipynb book/chapters/*.cache.json notebooks/*.ipynb
