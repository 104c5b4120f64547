# The two commands a fresh machine needs: `make demo` and `make test`.
# Both create .venv and install the project with its dev extras first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# CPU-only torch from the local wheel: a bare `torch` would pull a multi-GB CUDA build.
TORCH_PIN ?= torch==2.13.0
# torchvision must match torch (any other release pulls its own torch)
TORCHVISION_PIN ?= torchvision==0.28.0
OUT ?= out
# test processes (pytest-xdist): each runs torch on one thread (tests/conftest.py), so two fill CI's two
# cores; an idle process takes queued tests from the other (worksteal), so the long ones do not end alone
TEST_WORKERS ?= 2

.PHONY: install demo test tradeoff train-noise evaluate reproduce-smoothgrad reproduce-stability bench bench-scaling docs clean report

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e ".[dev]" "$(TORCH_PIN)" "$(TORCHVISION_PIN)"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/smoothsal explain --out $(OUT)/explain
	$(VENV)/bin/smoothsal report $(OUT)/explain --out $(OUT)/report

test: $(STAMP)
	$(PY) -m pytest tests -n $(TEST_WORKERS) --dist worksteal

tradeoff: $(STAMP)
	$(VENV)/bin/smoothsal tradeoff --quick --out $(OUT)/tradeoff

train-noise: $(STAMP)
	$(VENV)/bin/smoothsal train-noise --quick --out $(OUT)/train_noise

evaluate: $(STAMP)
	$(VENV)/bin/smoothsal evaluate --quick --out $(OUT)/evaluate

# the two papers, one command each: quick by default, `make reproduce-stability FULL=1` for the run to cite
reproduce-smoothgrad: $(STAMP)
	$(VENV)/bin/smoothsal reproduce smoothgrad $(if $(FULL),,--quick) --out $(OUT)/reproduce/smoothgrad

reproduce-stability: $(STAMP)
	$(VENV)/bin/smoothsal reproduce stability $(if $(FULL),--publish results/reproduce/stability,--quick) --out $(OUT)/reproduce/stability

# every study folder under $(OUT) in one static HTML report: $(OUT)/report/index.html
report: $(STAMP)
	$(VENV)/bin/smoothsal report $(OUT) --out $(OUT)/report

# the anchors (Captum; Zennit and pytorch-grad-cam without their torchvision) for bench_anchors.py
# (one process) and bench_isolated.py (a process per configuration);
# "$(TORCH_PIN)" in the same install keeps pip from replacing the CPU torch.
bench: $(STAMP)
	$(PY) -m pip install -q -e ".[dev,bench]" "$(TORCH_PIN)" "$(TORCHVISION_PIN)"
	$(PY) -m pip install -q --no-deps zennit grad-cam
	$(PY) benchmarks/bench_smooth.py
	$(PY) benchmarks/bench_fold_alloc.py
	$(PY) benchmarks/bench_batch.py
	$(PY) benchmarks/bench_anchors.py
	$(PY) benchmarks/bench_isolated.py
	$(PY) benchmarks/bench_memory.py --quick

# explain-dataset under torchrun: 1 vs 2 processes (gloo, CPU; --device cuda --procs 1,N on GPUs)
bench-scaling: $(STAMP)
	$(PY) benchmarks/bench_scaling.py

# the API reference from the docstrings (MkDocs + mkdocstrings, offline) into site/; --strict: a
# docstring the renderer cannot read fails the build
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache site
