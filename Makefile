# calcimg: `make demo` runs the main job on sample_images/, `make test` runs the whole test suite.
# Both create .venv when needed and install calcimg with the pinned versions of constraints.txt.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
CONSTRAINTS := constraints.txt
RESULTS ?= results
PYTEST_ARGS ?=

.PHONY: demo test lint samples figures bench constraints clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Stamps record what is installed; they are redone when pyproject.toml or the pins change.
$(VENV)/.installed-core: pyproject.toml $(CONSTRAINTS) | $(PY)
	$(PIP) install --quiet -c $(CONSTRAINTS) -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(CONSTRAINTS) | $(PY)
	$(PIP) install --quiet -c $(CONSTRAINTS) -e ".[dev,napari,distributed]"
	touch $@ $(VENV)/.installed-core

# The main job: pair and compare the sample films, then point at the report. A re-run skips finished items;
# the exit status is kept (non-zero when an item failed).
demo: $(VENV)/.installed-core
	$(VENV)/bin/calcimg batch sample_images --out $(RESULTS); status=$$?; \
	echo "Report: $(abspath $(RESULTS))/report.html (cohort.csv, cohort.json, errors.csv, batch.log beside it)"; \
	exit $$status

test: $(VENV)/.installed-dev
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/ruff format --check src tests benchmarks scripts

# Regenerate the bundled sample pairs and the phantom figure (deterministic: same bytes every time).
samples: $(VENV)/.installed-core
	$(PY) scripts/make_sample_images.py

figures: $(VENV)/.installed-core
	$(PY) scripts/make_phantom_figure.py

# Accuracy (phantoms from unseen seeds, with baselines) and speed; both print tables and write benchmarks/results/.
bench: $(VENV)/.installed-dev
	$(PY) benchmarks/accuracy.py --pairs 20
	$(PY) benchmarks/speed.py

# Re-pin every package CI installs (run after changing dependencies; commit constraints.txt).
constraints: | $(PY)
	$(PIP) install --quiet -e ".[dev,napari,distributed]"
	$(PIP) freeze --exclude-editable | grep -v '^calcimg' > $(CONSTRAINTS)

clean:
	rm -rf $(VENV) $(RESULTS) .pytest_cache .ruff_cache
