# Two commands on a fresh clone: `make demo` and `make test`. Both create .venv first;
# `make test` also builds .venv-mxnet (about 70 s once) so the MXNet plugin is tested too.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PLUGINS := $(sort $(dir $(wildcard plugins/*/pyproject.toml)))
EXAMPLES := $(sort $(dir $(wildcard examples/*/pyproject.toml)))
STAMP := $(VENV)/.installed

.PHONY: venv test demo clean bench mxnet-env fuzz

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt $(wildcard plugins/*/pyproject.toml) $(wildcard examples/*/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade -c constraints.txt setuptools wheel
	$(PIP) install -q -c constraints.txt --no-build-isolation \
		-e '.[plots,test]' $(foreach p,$(PLUGINS),-e $(p)) $(foreach p,$(EXAMPLES),-e $(p))
	touch $@

test: $(STAMP) mxnet-env
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/interop demo --force

bench: $(STAMP)
	$(PIP) install -q -c constraints.txt onnxsim  # the exporter bench_onnx_to_coreml.py compares with
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

# The long differential-fuzzing run of the ONNX -> Core ML translator (docs/fuzzing.md): 20,000 random
# graphs, fixed seed, 2 workers; one minimal repro folder per failure signature under fuzz-out/.
# `make test` runs a short fixed-seed slice of it (plugins/interop-coreml/tests/fuzz/test_fuzz_slice.py).
FUZZ_SEED ?= 0
FUZZ_TRIALS ?= 20000
FUZZ_JOBS ?= 2
fuzz: $(STAMP)
	$(PY) -m interop_coreml.fuzz --seed $(FUZZ_SEED) --trials $(FUZZ_TRIALS) --jobs $(FUZZ_JOBS) --out fuzz-out/seed-$(FUZZ_SEED)

clean:
	rm -rf $(VENV) $(MXNET_VENV) interop-demo

# The MXNet plugin's separate environment (numpy < 1.24, onnx <= 1.14); see docs/plugins.md.
# interop and the plugin are shared with it at run time, so only the framework is installed.
MXNET_VENV := .venv-mxnet
MXNET_CONSTRAINTS := plugins/interop-mxnet/constraints-mxnet.txt

mxnet-env: $(MXNET_VENV)/.installed

$(MXNET_VENV)/.installed: $(MXNET_CONSTRAINTS)
	$(PYTHON) -m venv $(MXNET_VENV)
	$(MXNET_VENV)/bin/python -m pip install -q -c $(MXNET_CONSTRAINTS) mxnet numpy onnx
	$(MXNET_VENV)/bin/python -c "import mxnet, numpy, onnx; print('mxnet', mxnet.__version__, 'numpy', numpy.__version__, 'onnx', onnx.__version__)"
	touch $@
