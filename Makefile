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

.PHONY: demo test lint bench golden space clean

$(VENV)/.core: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

# torch 2.14.1 + torchvision 0.29.1 are pinned in constraints.txt (no CPU torchvision exists);
# gradio for the Space and its tests; pystac-client for cropmark collect; ray for --engine ray.
$(VENV)/.full: $(VENV)/.core
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,model,space,collect,ray]'
	touch $@

demo: $(VENV)/.core
	rm -rf $(DEMO)
	$(VENV)/bin/cropmark sample $(DEMO)/corpus
	$(VENV)/bin/cropmark build --corpus $(DEMO)/corpus --out $(DEMO)/build --version $(VERSION) --workers 2 --repo-id $(REPO_ID)
	$(VENV)/bin/cropmark audit $(RELEASE)
	$(PY) -c "from datasets import load_dataset; print(load_dataset('$(RELEASE)'))"
	$(PY) scripts/publish.py dataset $(RELEASE) --repo-id $(REPO_ID) --tag v$(VERSION) --dry-run

lint: $(VENV)/.core
	$(VENV)/bin/ruff check builder tests benchmarks scripts space
	$(VENV)/bin/ruff format --check builder tests benchmarks scripts space
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: $(VENV)/.full lint
	$(PY) -m pytest

# Re-render tests/golden/*.md from tests/data/ fixtures and re-hash the sample release in every
# layout (tests/golden/release_sha256.json); review the diff before committing.
golden: $(VENV)/.core
	$(PY) -m tests.golden.refresh
	$(PY) -m tests.golden.release

# The Space on http://127.0.0.1:7860 with the tiny test model (said on the page), the physics
# baseline fitted on the demo release and its eval tiles as examples. Needs `make demo` first.
space: $(VENV)/.full
	test -d $(RELEASE) || { echo "run 'make demo' first: the Space uses its release"; exit 2; }
	$(PY) scripts/train_baseline.py $(RELEASE) --out $(DEMO)/baseline --quiet
	CROPMARK_BASE_MODEL=tiny CROPMARK_ADAPTER= CROPMARK_BASELINE=$(DEMO)/baseline/baseline.json \
	CROPMARK_EXAMPLES=$(RELEASE)/data/eval $(PY) space/app.py

bench: $(VENV)/.full
	$(PY) benchmarks/bench_build.py --write
	$(PY) benchmarks/bench_leakage.py --write
	$(PY) benchmarks/bench_publish.py --write
	$(PY) benchmarks/bench_gates.py --write
	$(PY) benchmarks/bench_model.py --write
	$(PY) benchmarks/bench_space.py --write
	$(PY) benchmarks/bench_standin.py --write
	$(PY) benchmarks/bench_space.py --model standin --write
	$(PY) benchmarks/bench_formats.py --write
	$(PY) benchmarks/bench_engine.py --write

clean:
	rm -rf $(DEMO) build .pytest_cache .mypy_cache .ruff_cache
