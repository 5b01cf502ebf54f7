"""MXNet as an interop runtime: a Gluon SymbolBlock on the CPU. Runs in .venv-mxnet."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from interop.plugin_api import ModelLoadError, TensorSpec
from interop_mxnet.layout import PARAMS_FILE, SYMBOL_FILE, read_io, sniff_mxnet


def mxnet_error_reason(exc: BaseException) -> str:
    """The line that says what went wrong (MXNet puts its C++ trace before it)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1].removeprefix("MXNetError: ") if lines else type(exc).__name__


def _spec(entry: dict) -> TensorSpec:
    return TensorSpec(entry["name"], entry["dtype"], tuple(entry["shape"]))


class MXNetSession:
    def __init__(self, path: Path):
        import warnings

        import mxnet as mx

        reason = sniff_mxnet(path)
        if reason:
            raise ModelLoadError(f"{path}: not an interop MXNet model: {reason}")
        io = read_io(path)
        self.inputs = [_spec(e) for e in io["inputs"]]
        self.outputs = [_spec(e) for e in io["outputs"]]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "cannot decide type" for data inputs
                self._block = mx.gluon.SymbolBlock.imports(
                    str(path / SYMBOL_FILE), [s.name for s in self.inputs], str(path / PARAMS_FILE)
                )
        except Exception as exc:
            raise ModelLoadError(f"{path}: MXNet cannot load it: {mxnet_error_reason(exc)}") from exc
        self.engine = "mxnet (CPU)"
        self.versions = {"mxnet": mx.__version__, "numpy": np.__version__}

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import mxnet as mx

        args = [mx.nd.array(feeds[s.name], dtype=s.dtype) for s in self.inputs]
        result = self._block(*args)
        if not isinstance(result, (list, tuple)):
            result = [result]
        return {s.name: r.asnumpy() for s, r in zip(self.outputs, result)}


def load(path: Path) -> MXNetSession:
    return MXNetSession(path)
