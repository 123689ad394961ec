# make install | make test | make demo | make bench | make wheels
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
APPS   := $(patsubst %/pyproject.toml,%,$(wildcard apps/*/pyproject.toml))
PKGS   := core/pyproject.toml $(wildcard apps/*/pyproject.toml)

.PHONY: install test demo bench wheels clean

$(STAMP): requirements.txt $(PKGS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -r requirements.txt
	$(if $(APPS),$(BIN)/python -m pip install --no-deps $(foreach a,$(APPS),-e ./$(a)))
	touch $(STAMP)

install: $(STAMP)

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not slow and not gpu"

demo: install
	$(BIN)/python scripts/demo.py --out runs/demo

bench: install
	for f in benchmarks/[!_]*.py; do $(BIN)/python $$f || exit 1; done

wheels: install
	$(BIN)/python -m pip wheel --no-deps -w dist ./core $(dir $(wildcard apps/*/pyproject.toml))

clean:
	rm -rf $(VENV) runs dist
