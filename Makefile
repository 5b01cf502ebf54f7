# Two commands on a fresh clone: `make demo` and `make test`. Both create .venv first;
# `make test` also builds .venv-mxnet (about 70 s once) so the MXNet plugin is tested too.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PLUGINS := $(sort $(dir $(wildcard plugins/*/pyproject.toml)))
EXAMPLES := $(sort $(dir $(wildcard examples/*/pyproject.toml)))
STAMP := $(VENV)/.installed

.PHONY: venv test test-extended demo clean bench mxnet-env fuzz calibrate

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt $(wildcard plugins/*/pyproject.toml) $(wildcard examples/*/pyproject.toml)
	@$(PYTHON) -c 'import sys; v = sys.version_info; sys.exit(0 if v >= (3, 11) else "interop needs Python 3.11 or later; $(PYTHON) is %d.%d: run make PYTHON=python3.11 (or newer)" % v[:2])'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade -c constraints.txt setuptools wheel
	$(PIP) install -q -c constraints.txt --no-build-isolation \
		-e '.[plots,test]' $(foreach p,$(PLUGINS),-e $(p)) $(foreach p,$(EXAMPLES),-e $(p))
	touch $@

# pytest-xdist workers for `make test` (the CI machine has 2 cores; 0 runs the suite in one process).
TEST_WORKERS ?= 2

test: $(STAMP) mxnet-env
	$(PY) -m pytest -q -n $(TEST_WORKERS)

# Model campaigns too long for `make test` (tests marked `extended`, e.g. every Keras Application
# through tf2onnx into the importers); `make test` runs one representative of each.
test-extended: $(STAMP)
	INTEROP_EXTENDED=1 $(PY) -m pytest -q -m extended

demo: $(STAMP)
	$(VENV)/bin/interop demo --force

bench: $(STAMP)
	$(PIP) install -q -c constraints.txt onnxsim  # the exporter bench_onnx_to_coreml.py compares with
	$(PIP) install -q --no-deps -c constraints.txt onnx2torch  # bench_onnx_to_torch.py; its torchvision would be a CUDA build
	$(PY) benchmarks/run_all.py  # each bench_*.py in turn, then one table of every goal

# The long differential-fuzzing run of the ONNX -> Core ML translator (docs/fuzzing.md): 20,000 random
# graphs, fixed seed, 2 workers; one minimal repro folder per failure signature under fuzz-out/.
# `make test` runs a short fixed-seed slice of it (plugins/interop-coreml/tests/fuzz/test_fuzz_slice.py).
FUZZ_SEED ?= 0
FUZZ_TRIALS ?= 20000
FUZZ_JOBS ?= 2
fuzz: $(STAMP)
	$(PY) -m interop_coreml.fuzz --seed $(FUZZ_SEED) --trials $(FUZZ_TRIALS) --jobs $(FUZZ_JOBS) --out fuzz-out/seed-$(FUZZ_SEED)

# The calibration table of `interop check`'s default verdict (docs/check.md): the nine model-zoo networks,
# four Keras Applications and two PyTorch nets, faithful conversions and four injected bugs each
# (about an hour on 2 cores). `make test` runs its two small networks (tests/check/test_calibration.py).
calibrate: $(STAMP)
	$(PY) tests/check/calibration.py --full

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
