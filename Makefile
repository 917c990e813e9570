# Two commands on a fresh clone:
#   make demo   .venv, sample corpus, build, audit, cards, publish dry run
#   make test   .venv with dev and model extras, lint, types, all tests
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DEMO   ?= demo
VERSION ?= 1.0.0
RELEASE := $(DEMO)/build/cropmark-disambiguator-s2/$(VERSION)
REPO_ID ?= cropmark-demo/cropmark-disambiguator-s2

.PHONY: demo test lint bench golden clean

$(VENV)/.core: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

# torch 2.14.1 + torchvision 0.29.1 are pinned in constraints.txt (no CPU torchvision exists).
$(VENV)/.full: $(VENV)/.core
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,model]'
	touch $@

demo: $(VENV)/.core
	rm -rf $(DEMO)
	$(VENV)/bin/cropmark sample $(DEMO)/corpus
	$(VENV)/bin/cropmark build --corpus $(DEMO)/corpus --out $(DEMO)/build --version $(VERSION) --workers 2 --repo-id $(REPO_ID)
	$(VENV)/bin/cropmark audit $(RELEASE)
	$(PY) -c "from datasets import load_dataset; print(load_dataset('$(RELEASE)'))"
	$(PY) scripts/publish.py dataset $(RELEASE) --repo-id $(REPO_ID) --tag v$(VERSION) --dry-run

lint: $(VENV)/.core
	$(VENV)/bin/ruff check builder tests benchmarks scripts
	$(VENV)/bin/ruff format --check builder tests benchmarks scripts
	$(VENV)/bin/mypy

test: $(VENV)/.full lint
	$(PY) -m pytest

# Re-render tests/golden/*.md from tests/data/ fixtures; review the diff before committing.
golden: $(VENV)/.core
	$(PY) -m tests.golden.refresh

bench: $(VENV)/.full
	$(PY) benchmarks/bench_build.py --write
	$(PY) benchmarks/bench_publish.py --write
	$(PY) benchmarks/bench_gates.py --write
	$(PY) benchmarks/bench_model.py --write

clean:
	rm -rf $(DEMO) build .pytest_cache .mypy_cache .ruff_cache
