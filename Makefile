# Two commands for a new user:
#   make run    create .venv, install, run the main job (synthetic demo data unless FMA is in data/)
#   make test   create .venv, install, run the test suite (make smoke: one epoch on tests/data, under a minute)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Real FMA in data/ (bash download_data.sh small) is used when present, else the synthetic demo set.
DATA   ?= $(if $(wildcard data/fma_metadata/tracks.csv),data,data/demo)

.PHONY: run test smoke venv clean-venv system-packages

venv: $(STAMP)

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -r requirements.txt
	touch $(STAMP)

# The main job: (demo data) -> log-mel cache -> train the best preset -> test report -> predict the test
# split's files with the saved checkpoint, their true genres beside the predicted ones.
# Another preset: `make run PRESET=configs/original_crnn.yaml`.
PRESET ?= configs/best.yaml
RUN    ?= runs/$(notdir $(basename $(PRESET)))-$(notdir $(DATA))

run: $(STAMP)
	@$(BIN)/python -c "import allocator, sys; sys.exit(allocator.find_tcmalloc() is None)" \
	  || echo "note: no tcmalloc: CPU training runs on glibc's malloc, with more memory (apt-get install libtcmalloc-minimal4)"
	@if [ "$(DATA)" = data/demo ]; then $(BIN)/python demo_data.py --out data/demo; fi
	$(BIN)/python main.py --config $(PRESET) --data-dir $(DATA) --subset small --out $(RUN)
	$(BIN)/python pre_trained_models.py --checkpoint $(RUN)/best.pt $(RUN)/test_files.csv

# One epoch of the default recipe on the real clips of tests/data, then prediction with its checkpoint and with
# the shipped musicnn: every stage of the pipeline, in under a minute.
SMOKE := runs/smoke

smoke: $(STAMP)
	rm -rf $(SMOKE)
	$(BIN)/python main.py --data-dir tests/data --cache-dir $(SMOKE)/cache --out $(SMOKE)/run --epochs 1 \
		--batch-size 4 --eval-crops 2 --bootstrap 100 --wandb disabled --quiet
	$(BIN)/python pre_trained_models.py --checkpoint $(SMOKE)/run/best.pt tests/data/extra_audio
	$(BIN)/python pre_trained_models.py --checkpoint pretrained/musicnn_msd.pt tests/data/fma_small/000/000002.mp3

# The suite in TEST_WORKERS processes (pytest-xdist; each test module on one worker, so its fixtures are
# built once), one torch/BLAS thread per process so that the workers do not compete for the cores.
# `make test PYTEST_ARGS='-m "not slow"'` runs the fast tier alone.
TEST_WORKERS ?= 2
PYTEST_ARGS ?=

test: $(STAMP) system-packages
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadscope --durations=15 $(PYTEST_ARGS) tests

# Debian packages the tests use: chromium, which the web page's browser tests (tests/test_app.py) drive through
# Playwright (no browser download), and tcmalloc, the allocator the entry scripts start themselves on
# (allocator.py; without it they use glibc's malloc with thresholds, and its tests skip). Installed here when
# missing and apt-get is there (as root, or through sudo without a password); a failure only warns.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo -n)
TCMALLOC_DEB := $(firstword $(wildcard /usr/lib/*/libtcmalloc_minimal.so.4 /usr/lib/libtcmalloc_minimal.so.4))
PACKAGES := $(if $(wildcard /usr/bin/chromium),,chromium) $(if $(TCMALLOC_DEB),,libtcmalloc-minimal4)

system-packages:
	@if [ -n "$(strip $(PACKAGES))" ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing $(strip $(PACKAGES)) for the tests"; \
	  ( $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(PACKAGES) >/dev/null ) \
	    || echo "warning: $(strip $(PACKAGES)) could not be installed: the tests that need them will skip"; \
	fi

clean-venv:
	rm -rf $(VENV)
