# The two commands a fresh machine needs: `make demo` and `make test`.
# Both create .venv and install the project with its dev extras first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# CPU-only torch from the local wheel: a bare `torch` would pull a multi-GB CUDA build.
TORCH_PIN ?= torch==2.13.0
OUT ?= out

.PHONY: install demo test tradeoff train-noise evaluate bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/smoothsal explain --out $(OUT)/explain

test: $(STAMP)
	$(PY) -m pytest tests

tradeoff: $(STAMP)
	$(VENV)/bin/smoothsal tradeoff --quick --out $(OUT)/tradeoff

train-noise: $(STAMP)
	$(VENV)/bin/smoothsal train-noise --quick --out $(OUT)/train_noise

evaluate: $(STAMP)
	$(VENV)/bin/smoothsal evaluate --quick --out $(OUT)/evaluate

# the anchors (Captum; Zennit and pytorch-grad-cam without their torchvision) for bench_anchors.py;
# "$(TORCH_PIN)" in the same install keeps pip from replacing the CPU torch.
bench: $(STAMP)
	$(PY) -m pip install -q -e ".[dev,bench]" "$(TORCH_PIN)"
	$(PY) -m pip install -q --no-deps zennit grad-cam
	$(PY) benchmarks/bench_smooth.py
	$(PY) benchmarks/bench_batch.py
	$(PY) benchmarks/bench_anchors.py
	$(PY) benchmarks/bench_memory.py --quick

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
