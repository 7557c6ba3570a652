# Two commands for a new user:
#   make run    create .venv, install, run the main job (synthetic demo data unless FMA is in data/)
#   make test   create .venv, install, run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Real FMA in data/ (bash download_data.sh small) is used when present, else the synthetic demo set.
DATA   ?= $(if $(wildcard data/fma_metadata/tracks.csv),data,data/demo)

.PHONY: run test venv clean-venv

venv: $(STAMP)

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -r requirements.txt
	touch $(STAMP)

run: $(STAMP)
	@if [ "$(DATA)" = data/demo ]; then $(BIN)/python demo_data.py --out data/demo; fi
	$(BIN)/python main.py --data-dir $(DATA) --subset small --prepare-only

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

clean-venv:
	rm -rf $(VENV)
