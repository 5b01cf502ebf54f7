"""Core ML runtimes as the plugin API calls them: Apple's Core ML on macOS, the reference interpreter anywhere.

Both return a Session whose ``engine`` says which one computed the numbers.
Models written by interop's ONNX exporter record their original (ONNX) input
and output names in ``user_defined_metadata["interop.io_names"]``; sessions
then expose and accept those names, so a Core ML copy can be compared with its
ONNX source name for name.  Other models keep their Core ML names.

Importing this module is cheap: coremltools is imported only when a model is
loaded.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from interop_coreml.quiet import quiet_coremltools

IO_NAMES_METADATA_KEY = "interop.io_names"
# ONNX names of rank-0 inputs/outputs, which a Core ML model carries as shape (1,) (see onnx2mil.driver).
SCALAR_IO_METADATA_KEY = "interop.scalar_io"
INTERPRETER_ENGINE = "coreml (reference interpreter)"
NATIVE_ENGINE = "coreml (Apple Core ML, CPU only)"


def interpreter_available() -> tuple[bool, str]:
    """(True, "") when coremltools is installed (its loader of saved programs is needed)."""
    if importlib.util.find_spec("coremltools") is None:
        return False, "the Core ML reference interpreter needs coremltools (pip install coremltools)"
    return True, ""


def native_available() -> tuple[bool, str]:
    """(True, "") on macOS with coremltools installed; otherwise why Apple's runtime cannot run."""
    system = platform.system()
    if system != "Darwin":
        shown = "Linux" if system == "Linux" else (system or "an unknown OS")
        return False, f"Apple's Core ML runtime runs only on macOS (this is {shown})"
    if importlib.util.find_spec("coremltools") is None:
        return False, "Apple's Core ML runtime is reached through coremltools, which is not installed"
    return True, ""


def _tensor_spec(name: str, dtype: str, shape: tuple[Any, ...]) -> Any:
    from interop.plugin_api import TensorSpec

    return TensorSpec(name=name, dtype=dtype, shape=tuple(shape))


@dataclass
class _NameMap:
    """Translation between Core ML names and the names a session shows (ONNX names when recorded)."""

    inputs: dict[str, str] = field(default_factory=dict)  # coreml name -> shown name
    outputs: dict[str, str] = field(default_factory=dict)
    scalar_inputs: frozenset[str] = frozenset()  # shown names of rank-0 inputs (carried as (1,))
    scalar_outputs: frozenset[str] = frozenset()

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> "_NameMap":
        mapping = _json_object(metadata.get(IO_NAMES_METADATA_KEY))
        scalars = _json_object(metadata.get(SCALAR_IO_METADATA_KEY))
        return cls(
            {str(k): str(v) for k, v in dict(mapping.get("inputs") or {}).items()},
            {str(k): str(v) for k, v in dict(mapping.get("outputs") or {}).items()},
            frozenset(map(str, scalars.get("inputs") or ())),
            frozenset(map(str, scalars.get("outputs") or ())),
        )

    def shown_shape(self, shown_name: str, shape: tuple[Any, ...], scalars: frozenset[str]) -> tuple[Any, ...]:
        """A rank-0 tensor's shape is () to the user, whatever the model carries."""
        return () if shown_name in scalars and tuple(shape) in ((1,), (None,)) else tuple(shape)

    def shown_input(self, coreml_name: str) -> str:
        return self.inputs.get(coreml_name, coreml_name)

    def shown_output(self, coreml_name: str) -> str:
        return self.outputs.get(coreml_name, coreml_name)

    def feeds_to_coreml(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        shown_to_coreml = {shown: coreml for coreml, shown in self.inputs.items()}
        return {
            shown_to_coreml.get(name, name):
                np.reshape(value, (1,)) if name in self.scalar_inputs and np.ndim(value) == 0 else value
            for name, value in feeds.items()
        }

    def output_from_coreml(self, shown_name: str, value: Any) -> np.ndarray:
        value = np.asarray(value)
        if shown_name in self.scalar_outputs and value.shape == (1,):
            return value.reshape(())
        return value


def _json_object(raw: str | None) -> dict[str, Any]:
    """A JSON object from model metadata; anything else (absent, garbage) is empty."""
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _coremltools_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in ("coremltools", "numpy"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            pass
    return versions


def _model_load_error(message: str) -> Exception:
    try:
        from interop.plugin_api import ModelLoadError
    except ImportError:  # the foundation is absent when the plugin is used on its own
        return ValueError(message)
    return ModelLoadError(message)


class InterpreterSession:
    """A saved ML Program evaluated by the numpy reference interpreter."""

    engine = INTERPRETER_ENGINE

    def __init__(self, path: pathlib.Path):
        from .interpreter import ModelFormatError, load_program

        try:
            self.program = load_program(path)
        except ModelFormatError as exc:
            raise _model_load_error(str(exc)) from exc
        self._names = _NameMap.from_metadata(self.program.metadata)
        names = self._names
        self.inputs = [
            _tensor_spec(shown, info.dtype, names.shown_shape(shown, info.shape, names.scalar_inputs))
            for info in self.program.inputs for shown in [names.shown_input(info.name)]
        ]
        self.outputs = [
            _tensor_spec(shown, info.dtype, names.shown_shape(shown, info.shape, names.scalar_outputs))
            for info in self.program.outputs for shown in [names.shown_output(info.name)]
        ]
        self.versions = _coremltools_versions()

    def run(self, feeds: Mapping[str, np.ndarray], capture: list[str] | None = None) -> dict[str, np.ndarray]:
        """Outputs keyed by the session's output names; ``capture`` adds intermediate MIL variables."""
        results = self.program.run(self._names.feeds_to_coreml(feeds), capture=capture)
        output_names = {info.name for info in self.program.outputs}
        shown = {}
        for name, value in results.items():
            if name in output_names:
                shown_name = self._names.shown_output(name)
                shown[shown_name] = self._names.output_from_coreml(shown_name, value)
            else:
                shown[name] = value
        return shown


class NativeSession:
    """A model run by Apple's Core ML framework through coremltools (macOS only, CPU only)."""

    engine = NATIVE_ENGINE

    def __init__(self, path: pathlib.Path):
        ok, reason = native_available()
        if not ok:
            raise RuntimeError(reason)
        import coremltools as ct

        from .interpreter import ModelFormatError
        from .interpreter.loading import read_confined_spec

        try:
            # The same confinement the interpreter applies (manifest paths, symlinks, weight
            # blob paths) runs before coremltools or Core ML resolve anything in the package.
            read_confined_spec(path)
        except ModelFormatError as exc:
            raise _model_load_error(str(exc)) from exc
        self.model = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.CPU_ONLY)
        spec = self.model.get_spec()
        self._names = _NameMap.from_metadata(dict(spec.description.metadata.userDefined))
        names = self._names
        self.inputs = [_feature_spec(names.shown_input(f.name), f, names.scalar_inputs) for f in spec.description.input]
        self.outputs = [
            _feature_spec(names.shown_output(f.name), f, names.scalar_outputs) for f in spec.description.output
        ]
        self.versions = _coremltools_versions()
        self.versions["macOS"] = platform.mac_ver()[0]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        coreml_feeds = self._names.feeds_to_coreml(feeds)
        prediction = self.model.predict({name: np.asarray(value) for name, value in coreml_feeds.items()})
        return {
            shown: self._names.output_from_coreml(shown, value)
            for name, value in prediction.items() for shown in [self._names.shown_output(name)]
        }


_MULTIARRAY_DTYPES = {"FLOAT32": "float32", "FLOAT16": "float16", "DOUBLE": "float64", "INT32": "int32"}


def _feature_spec(shown_name: str, feature: Any, scalars: frozenset[str] = frozenset()) -> Any:
    """TensorSpec of a model-description feature (what Apple's runtime sees), flexible dims as None.

    A rank-0 ONNX tensor (named in ``scalars``) is carried as shape (1,) and shown as ().
    """
    kind = feature.type.WhichOneof("Type")
    if kind == "multiArrayType":
        from coremltools.proto import FeatureTypes_pb2

        array_type = feature.type.multiArrayType
        dtype_name = FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(array_type.dataType)
        shape: tuple[int | None, ...] = tuple(int(d) for d in array_type.shape)
        if array_type.WhichOneof("ShapeFlexibility") == "shapeRange":
            # A dim whose range is not a single value is flexible.
            ranges = array_type.shapeRange.sizeRanges
            shape = tuple(
                int(r.lowerBound) if r.lowerBound == r.upperBound else None for r in ranges
            )
        elif array_type.WhichOneof("ShapeFlexibility") == "enumeratedShapes":
            options = [tuple(s.shape) for s in array_type.enumeratedShapes.shapes]
            shape = tuple(dims[0] if len(set(dims)) == 1 else None for dims in zip(*options))
        if shown_name in scalars and shape in ((1,), (None,)):
            shape = ()
        return _tensor_spec(shown_name, _MULTIARRAY_DTYPES.get(dtype_name, dtype_name.lower()), shape)
    return _tensor_spec(shown_name, kind or "unknown", ())


def load_interpreter(path: pathlib.Path) -> InterpreterSession:
    """Load ``path`` (an .mlpackage) into the reference interpreter."""
    quiet_coremltools()
    return InterpreterSession(pathlib.Path(path))


def load_native(path: pathlib.Path) -> NativeSession:
    """Load ``path`` into Apple's Core ML runtime (CPU only); raises on non-macOS systems."""
    quiet_coremltools()
    return NativeSession(pathlib.Path(path))
