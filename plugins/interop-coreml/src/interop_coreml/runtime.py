"""Core ML runtimes as the plugin API calls them: Apple's Core ML on macOS, the reference interpreter anywhere.

Both return a Session whose ``engine`` says which one computed the numbers.
Models written by interop's ONNX exporter record their original (ONNX) input
and output names in the model's metadata (``METADATA_IO_NAMES`` of the plugin
API); sessions then expose and accept those names, so a Core ML copy can be
compared with its ONNX source name for name.  Other models keep their Core ML
names. Every session's ``metadata`` is the model's user-defined metadata.

Importing this module is cheap: coremltools is imported only when a model is
loaded.
"""

from __future__ import annotations

import json
import pathlib
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from interop.plugin_api import METADATA_IO_NAMES, METADATA_SCALAR_IO, VALUE_MAP_METADATA_KEY, ModelLoadError
from interop_coreml.availability import interpreter_available, native_available
from interop_coreml.coremltools_import import import_coremltools
from interop_coreml.quiet import quiet_coremltools

INTERPRETER_ENGINE = "coreml (reference interpreter)"
NATIVE_ENGINE = "coreml (Apple Core ML, CPU only)"


def _tensor_spec(name: str, dtype: str, shape: tuple[Any, ...], max_shape: tuple[Any, ...] | None = None) -> Any:
    from interop.plugin_api import TensorSpec

    bounded = max_shape is not None and len(max_shape) == len(shape) and any(
        b is not None for b, d in zip(max_shape, shape) if d is None)
    return TensorSpec(name=name, dtype=dtype, shape=tuple(shape), max_shape=tuple(max_shape) if bounded else None)


def _max_shape(feature: Any) -> tuple[int | None, ...] | None:
    """The largest size of each dimension a model-description feature accepts (Core ML enforces it)."""
    if feature.type.WhichOneof("Type") != "multiArrayType":
        return None
    array_type = feature.type.multiArrayType
    flexibility = array_type.WhichOneof("ShapeFlexibility")
    if flexibility == "shapeRange":
        return tuple(None if r.upperBound < 0 else int(r.upperBound) for r in array_type.shapeRange.sizeRanges)
    if flexibility == "enumeratedShapes":
        return tuple(max(dims) for dims in zip(*(tuple(s.shape) for s in array_type.enumeratedShapes.shapes)))
    return None


def _input_bounds(path: pathlib.Path) -> dict[str, tuple[int | None, ...] | None]:
    """Core ML input name -> its bounds, from the package's model description."""
    from .interpreter.loading import read_confined_spec

    spec, _ = read_confined_spec(path)
    return {feature.name: _max_shape(feature) for feature in spec.description.input}


# ONNX element types (int64, bool, ...) of inputs/outputs the Core ML model carries as int32
# (see onnx2mil.inputs). Sessions show and accept inputs in the ONNX type and narrow them (refusing
# a value int32 cannot hold); bool outputs come back as bool (int32 0/1 is only how Core ML carries
# them); integer outputs stay int32, as Core ML computes them, and checks compare them by value.
NARROWED_IO_METADATA_KEY = "interop.narrowed_io"
_NARROWABLE = {"int64", "int16", "int8", "uint8", "uint16", "uint32", "bool"}


@dataclass
class _NameMap:
    """Translation between Core ML names and the names a session shows (ONNX names when recorded)."""

    inputs: dict[str, str] = field(default_factory=dict)  # coreml name -> shown name
    outputs: dict[str, str] = field(default_factory=dict)
    scalar_inputs: frozenset[str] = frozenset()  # shown names of rank-0 inputs (carried as (1,))
    scalar_outputs: frozenset[str] = frozenset()
    narrowed_inputs: dict[str, str] = field(default_factory=dict)  # shown name -> ONNX dtype (carried as int32)
    narrowed_outputs: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> "_NameMap":
        mapping = _json_object(metadata.get(METADATA_IO_NAMES))
        scalars = _json_object(metadata.get(METADATA_SCALAR_IO))
        narrowed = _json_object(metadata.get(NARROWED_IO_METADATA_KEY))
        return cls(
            {str(k): str(v) for k, v in dict(mapping.get("inputs") or {}).items()},
            {str(k): str(v) for k, v in dict(mapping.get("outputs") or {}).items()},
            frozenset(map(str, scalars.get("inputs") or ())),
            frozenset(map(str, scalars.get("outputs") or ())),
            _narrowed(narrowed.get("inputs")),
            _narrowed(narrowed.get("outputs")),
        )

    def shown_dtype(self, shown_name: str, dtype: str, narrowed: Mapping[str, str], output: bool = False) -> str:
        """The ONNX element type of an input (or bool output) the model carries as int32, else the model's own."""
        shown = narrowed.get(shown_name, dtype) if dtype == "int32" else dtype
        return dtype if output and shown != "bool" else shown

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
            shown_to_coreml.get(name, name): self._narrow(
                name, np.reshape(value, (1,)) if name in self.scalar_inputs and np.ndim(value) == 0 else value)
            for name, value in feeds.items()
        }

    def _narrow(self, name: str, value: Any) -> Any:
        """An int64 (or bool, int8, ...) feed as the int32 the model takes; a value int32 cannot hold is refused."""
        if name not in self.narrowed_inputs:
            return value
        value = np.asarray(value)
        if value.dtype.kind in "iu" and value.size and value.dtype.itemsize >= 4:
            info = np.iinfo(np.int32)
            low, high = int(value.min()), int(value.max())
            if low < info.min or high > info.max:
                raise _input_error(
                    f"input {name} holds values from {low} to {high}; the Core ML model takes it as int32 "
                    f"(narrowed from {self.narrowed_inputs[name]} at conversion), which holds "
                    f"{info.min}..{info.max}")
        if value.dtype.kind not in "biu":
            return value  # a float feed is the caller's mistake; let the model's own check report it
        return value.astype(np.int32)

    def output_from_coreml(self, shown_name: str, value: Any) -> np.ndarray:
        value = np.asarray(value)
        if shown_name in self.scalar_outputs and value.shape == (1,):
            value = value.reshape(())
        if self.narrowed_outputs.get(shown_name) == "bool" and value.dtype.kind in "iu":
            value = value != 0
        return value


def _narrowed(raw: Any) -> dict[str, str]:
    """{name: ONNX dtype} from metadata, keeping only the types a model may narrow to int32."""
    if not isinstance(raw, dict):
        return {}
    return {str(k): str(v) for k, v in raw.items() if str(v) in _NARROWABLE}


def _input_error(message: str) -> Exception:
    try:
        from interop.plugin_api import InteropError
    except ImportError:  # the foundation is absent when the plugin is used on its own
        return ValueError(message)
    return InteropError(message, hint="feed values within the int32 range")


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


class InterpreterSession:
    """A saved ML Program evaluated by the numpy reference interpreter."""

    engine = INTERPRETER_ENGINE

    def __init__(self, path: pathlib.Path):
        from .interpreter import ModelFormatError, load_program

        try:
            self.program = load_program(path)
        except ModelFormatError as exc:
            raise ModelLoadError(str(exc)) from exc
        self.metadata: dict[str, str] = dict(self.program.metadata)
        self._names = _NameMap.from_metadata(self.metadata)
        names = self._names
        # The interpreter does not enforce the description's bounds, Apple's runtime does: show them alike.
        bounds = _input_bounds(pathlib.Path(path))
        self.inputs = [
            _tensor_spec(shown, names.shown_dtype(shown, info.dtype, names.narrowed_inputs),
                         names.shown_shape(shown, info.shape, names.scalar_inputs), bounds.get(info.name))
            for info in self.program.inputs for shown in [names.shown_input(info.name)]
        ]
        self.outputs = [
            _tensor_spec(shown, names.shown_dtype(shown, info.dtype, names.narrowed_outputs, output=True),
                         names.shown_shape(shown, info.shape, names.scalar_outputs))
            for info in self.program.outputs for shown in [names.shown_output(info.name)]
        ]
        self.versions = _coremltools_versions()

    def intermediates(self) -> list[Any]:
        """Every variable an op of the program computes (plugin API 1.1), with the ONNX value it came from.

        The translator records ``{ONNX value: MIL variable}`` in the model's metadata; variables
        that coremltools' passes removed are simply not in the program.
        """
        from interop.plugin_api import IntermediateSpec

        recorded = _json_object(self.program.metadata.get(VALUE_MAP_METADATA_KEY))
        source = {str(mil): str(onnx_name) for onnx_name, mil in recorded.items()}
        return [
            IntermediateSpec(name=name, op_type=record.op_type, op_name=record.op_name,
                             inputs=tuple(record.inputs), source=source.get(name))
            for record in self.program.ops if record.op_type != "const" for name in record.outputs
        ]

    def input_index_ranges(self) -> dict[str, tuple[int, int]]:
        """Integer inputs used as ``gather`` indices into a constant table (an embedding): their valid rows."""
        program = self.program
        shown = {info.name: self._names.shown_input(info.name) for info in program.inputs
                 if info.dtype.startswith(("int", "uint"))}
        origin = dict(shown)
        ranges: dict[str, tuple[int, int]] = {}
        for record in program.ops:
            if not record.inputs:
                continue
            if record.op_type in ("cast", "reshape", "squeeze", "expand_dims", "identity") \
                    and record.inputs[0] in origin:
                for name in record.outputs:
                    origin[name] = origin[record.inputs[0]]
            elif record.op_type in ("gather", "gather_along_axis") and record.inputs[-1] in origin:
                table_value = program.constant_input(record.op_name, "x")
                table = np.shape(table_value) if table_value is not None else ()
                axis_value = program.constant_input(record.op_name, "axis")
                axis = int(np.asarray(axis_value).ravel()[0]) if axis_value is not None else 0
                if table and -len(table) <= axis < len(table) and table[axis] > 0:
                    ranges[origin[record.inputs[-1]]] = (0, int(table[axis]) - 1)
        return ranges

    def run_intermediates(self, feeds: Mapping[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
        """The named MIL variables computed for ``feeds`` (plugin API 1.1)."""
        results = self.program.run(self._names.feeds_to_coreml(feeds), capture=list(names))
        return {name: results[name] for name in names}

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
            raise ModelLoadError(str(exc)) from exc
        self.model = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.CPU_ONLY)
        spec = self.model.get_spec()
        self.metadata: dict[str, str] = dict(spec.description.metadata.userDefined)
        self._names = _NameMap.from_metadata(self.metadata)
        names = self._names
        self.inputs = [_feature_spec(names.shown_input(f.name), f, names.scalar_inputs, names.narrowed_inputs)
                       for f in spec.description.input]
        self.outputs = [
            _feature_spec(names.shown_output(f.name), f, names.scalar_outputs, names.narrowed_outputs, output=True)
            for f in spec.description.output
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


def _feature_spec(shown_name: str, feature: Any, scalars: frozenset[str] = frozenset(),
                  narrowed: Mapping[str, str] | None = None, output: bool = False) -> Any:
    """TensorSpec of a model-description feature (what Apple's runtime sees), flexible dims as None.

    A rank-0 ONNX tensor (named in ``scalars``) is carried as shape (1,) and shown as (); an
    int64 (bool, ...) input carried as int32 (named in ``narrowed``) shows its ONNX type, and so
    does a bool output.
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
        dtype = _MULTIARRAY_DTYPES.get(dtype_name, dtype_name.lower())
        if dtype == "int32" and narrowed and shown_name in narrowed and (not output or narrowed[shown_name] == "bool"):
            dtype = narrowed[shown_name]
        return _tensor_spec(shown_name, dtype, shape, _max_shape(feature))
    return _tensor_spec(shown_name, kind or "unknown", ())


def load_interpreter(path: pathlib.Path) -> InterpreterSession:
    """Load ``path`` (an .mlpackage) into the reference interpreter."""
    quiet_coremltools()
    import_coremltools()  # without TensorFlow/PyTorch: reading and running a saved program needs neither
    return InterpreterSession(pathlib.Path(path))


def load_native(path: pathlib.Path) -> NativeSession:
    """Load ``path`` into Apple's Core ML runtime (CPU only); raises on non-macOS systems."""
    quiet_coremltools()
    import_coremltools()
    return NativeSession(pathlib.Path(path))
