# One command each: the first use creates .venv and installs minitx into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= tiny.yaml
ARGS   ?=

# One BLAS thread by default: minitx's matrices are small, and on a shared two-core machine a
# second OpenBLAS thread waiting for a busy core makes every product 10-20x slower. On a quiet
# machine the large base config is faster with two: `make bench CONFIG=base.yaml BLAS_THREADS=2`.
# minitx sets the count itself (train.threads, default 1, or --threads), so `python -m minitx`
# behaves the same; we pass BLAS_THREADS on as --threads, and export it for the tests.
BLAS_THREADS ?= 1
export OPENBLAS_NUM_THREADS = $(BLAS_THREADS)

.PHONY: venv train test gradcheck bench tour tour-outputs doc-links claims clean

venv: $(STAMP)

# Reinstall when the dependencies change; the package itself is installed editable.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

train: $(STAMP)
	$(BIN)/python -m minitx train $(CONFIG) --threads $(BLAS_THREADS) $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q

gradcheck: $(STAMP)
	$(BIN)/python -m minitx gradcheck $(CONFIG)

bench: $(STAMP)
	$(BIN)/python -m minitx bench $(CONFIG) --threads $(BLAS_THREADS) $(ARGS)

# The four small runs docs/tour.md reads, into runs/tour/ (docs/tour.md says how long; a run
# already trained is kept), then every tour command's real output into docs/tour/outputs/.
tour: $(STAMP)
	$(BIN)/python scripts/tour.py

tour-outputs: tour
	$(BIN)/python scripts/make_tour_outputs.py

# After moving code: every link from the docs into minitx/ follows the name its text shows.
doc-links: $(STAMP)
	$(BIN)/python scripts/make_doc_links.py

# Every claim the docs make about the tour's runs (scripts/claims.py), checked on three seeds and
# two BLAS kernels, this machine's own and another, each trained into runs/claims/; prints the
# table. The first time trains six sets of the tour's runs and a phrases run each (20 to 60
# minutes on two cores, as busy as they are); the runs are kept, so later checks take minutes.
# ARGS=--experiments adds docs/lowrank.md's claims (both experiments on each kernel: an hour more).
claims: $(STAMP)
	$(BIN)/python scripts/check_claims.py $(ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache

# docs/images/view-numbers.png, the page `minitx view` writes for the tour's numbers run, drawn by
# headless Chromium (Debian's chromium package) with the network blocked.
.PHONY: view-screenshot
view-screenshot: tour
	$(BIN)/python scripts/make_view_screenshot.py
