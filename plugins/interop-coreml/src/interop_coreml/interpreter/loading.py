"""Reading a saved Core ML model from disk into a MIL Program.

The file is read the way an app receives it: the ``.mlpackage`` directory's
Manifest.json names the root model spec (``model.mlmodel``) and the weights
folder; the spec is parsed from its protobuf bytes and handed, together with
the weight-blob directory, to coremltools' loader of saved programs
(``coremltools.converters.mil.frontend.milproto.load``), whose weights are read by
interop's own blob reader (:mod:`.blobs`: one copy of each weight).  No in-memory builder
object from a conversion is ever used.  Before anything is parsed, the package
is confined to its own folder (:mod:`interop_coreml.package`): no symlinks, no
manifest or weight path leading outside it.

A saved program does not name its flexible dims, so coremltools' loader gives
each one a fresh symbol; a program whose ops need two inputs' dims to be equal
(``scatter_along_axis`` of ``x`` by ``idx`` with one batch) then fails the loader's
type inference.  When the model's metadata records which input dims are one
symbol (:data:`SHARED_DIMS_KEY`, written by interop's translator), the program's
inputs are declared with those symbols shared before its ops are read.
"""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass
from typing import Any

from ..package import PackageError, check_weight_references, confined_path, validate_package
from .errors import LegacyModelError, ModelFormatError

# {input name: [symbol name or null per axis]}: flexible input dims that are one dim.
SHARED_DIMS_KEY = "interop.shared_dims"


@dataclass
class SavedModel:
    """A parsed Core ML model: the protobuf spec, its MIL program and where its weights live."""

    path: pathlib.Path
    spec: Any  # coremltools.proto.Model_pb2.Model
    program: Any  # coremltools.converters.mil.mil.Program
    weights_dir: pathlib.Path | None


def _locate_in_package(package: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path | None]:
    """Spec file and weights directory of an ``.mlpackage``, confined to the package (see package.py)."""
    try:
        validated = validate_package(package)
    except PackageError as exc:
        raise ModelFormatError(f"{package}: {exc}") from None
    return validated.spec_path, validated.weights_dir


def read_spec(spec_path: pathlib.Path) -> Any:
    """Parse a serialized Core ML ``Model`` protobuf."""
    from coremltools import proto

    spec = proto.Model_pb2.Model()
    try:
        # O_NOFOLLOW: the spec was checked not to be a symlink; keep it so until it is read.
        fd = os.open(spec_path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise ModelFormatError(f"{spec_path} cannot be read: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as handle:
        data = handle.read()
    try:
        spec.ParseFromString(data)
    except Exception as exc:  # protobuf raises its own DecodeError type
        raise ModelFormatError(f"{spec_path} is not a Core ML model spec: {exc}") from exc
    return spec


def read_confined_spec(path: str | pathlib.Path) -> tuple[Any, pathlib.Path | None]:
    """The parsed spec of ``path`` and its weights folder, after confining both to the package.

    ``path`` is an ``.mlpackage`` directory (validated by
    :func:`interop_coreml.package.validate_package`) or a bare spec file (whose weights
    may only come from the ``weights`` folder beside it).  Every weight blob the spec
    names must be a plain file inside the package.  Raises ModelFormatError.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        spec_path, weights_dir = _locate_in_package(path)
        root = pathlib.Path(os.path.realpath(path))
    elif path.is_file():
        spec_path = pathlib.Path(os.path.realpath(path))
        root = spec_path.parent
        weights_dir = None
        if (root / "weights").is_dir():
            try:
                weights_dir = confined_path(root, root, "weights", "the weights folder")
            except PackageError as exc:
                raise ModelFormatError(f"{path}: {exc}") from None
    else:
        raise ModelFormatError(f"{path} does not exist")

    spec = read_spec(spec_path)
    try:
        check_weight_references(spec, spec_path, root, weights_dir)
    except PackageError as exc:
        raise ModelFormatError(f"{path}: {exc}") from None
    return spec, weights_dir


def load_saved_model(path: str | pathlib.Path) -> SavedModel:
    """Read ``path`` (an ``.mlpackage`` directory, or a bare spec file) into a MIL Program.

    Raises LegacyModelError for NeuralNetwork / pipeline / classic ML models and
    ModelFormatError for anything unreadable or reaching outside the package.
    """
    path = pathlib.Path(path)
    spec, weights_dir = read_confined_spec(path)
    model_kind = spec.WhichOneof("Type")
    if model_kind != "mlProgram":
        raise LegacyModelError(
            f"{path} is a Core ML '{model_kind}' model (specification version "
            f"{spec.specificationVersion}); the reference interpreter runs only ML Programs "
            "(.mlpackage files made with convert_to='mlprogram'). Legacy NeuralNetwork models "
            "are not supported: re-convert the source model to an ML Program, or run the file "
            "with Apple's Core ML runtime on macOS."
        )

    try:
        program = _load_program(spec, weights_dir, _shared_dims(spec))
    except Exception as exc:
        # The loader rebuilds each op through the MIL builder: an op type this coremltools does not
        # define surfaces as a missing builder attribute, a failed type inference as a bare assert.
        raise ModelFormatError(f"coremltools could not read the ML Program in {path}: {_load_failure(exc)}") from exc
    return SavedModel(path=path, spec=spec, program=program, weights_dir=weights_dir)


def _shared_dims(spec: Any) -> dict[str, list[str | None]]:
    """The recorded shared input dims, or {} (absent or malformed metadata: every dim its own symbol)."""
    import json

    text = spec.description.metadata.userDefined.get(SHARED_DIMS_KEY)
    try:
        recorded = json.loads(text) if text else {}
    except ValueError:
        return {}
    if not isinstance(recorded, dict):
        return {}
    return {name: dims for name, dims in recorded.items()
            if isinstance(name, str) and isinstance(dims, list) and all(d is None or isinstance(d, str) for d in dims)}


def _load_program(spec: Any, weights_dir: pathlib.Path | None, shared: dict[str, list[str | None]]) -> Any:
    """coremltools' reader of a saved program (``milproto.load``), with two changes.

    The weights are read by :class:`~interop_coreml.interpreter.blobs.BlobFile`, which puts each
    weight's bytes straight into its array (coremltools' blob reader maps the whole file, keeps
    it resident while the program loads and copies every weight out of it). And the function
    inputs' flexible dims recorded as shared take one symbol each instead of a fresh one.
    """
    from coremltools.converters.mil.frontend.milproto import load as milproto
    from coremltools.converters.mil.mil import Function, Placeholder, Program, get_new_symbol, types

    from .blobs import BlobFiles

    # milproto.load's own steps (load_mil_proto, _load_function), with the context's table of
    # weight readers replaced and, where dims are shared, the function's inputs declared here.
    program_spec = spec.mlProgram
    if program_spec.version != 1 or program_spec.docString:
        raise ValueError("not a version 1 ML Program")
    context = milproto.TranscriptionContext(str(weights_dir) if weights_dir is not None else "")
    context.blob_reader_from_filename = BlobFiles()
    program = Program()
    symbols: dict[str, Any] = {}
    for func_name, func_spec in program_spec.functions.items():
        if not shared:
            program.add_function(func_name, milproto._load_function(context, func_spec, spec.specificationVersion))
            continue
        if func_spec.attributes:
            raise ValueError("attributes on functions are not supported")
        inputs = {}
        for named in func_spec.inputs:
            value_type = milproto.proto_to_types(named.type)
            if not types.is_tensor(value_type):
                raise ValueError(f"function input {named.name!r} of type {value_type} is not supported")
            shape = list(value_type.get_shape())
            for axis, symbol in enumerate(shared.get(named.name, [])):
                if symbol is not None and axis < len(shape) and not isinstance(shape[axis], int):
                    shape[axis] = symbols.setdefault(symbol, get_new_symbol())
            inputs[named.name] = Placeholder(sym_shape=shape, dtype=value_type.get_primitive(), name=named.name)
            context.register_var_with_name(named.name, inputs[named.name].outputs[0])
        if func_spec.opset not in func_spec.block_specializations:
            raise ValueError(f"missing block specialization for opset {func_spec.opset}")
        with Function(inputs, opset_version=milproto._target(spec.specificationVersion)) as function:
            milproto._load_block(context, func_spec.block_specializations[func_spec.opset])
        program.add_function(func_name, function)
    milproto._load_program_spec_attributes(context, program_spec, program)
    return program


def _load_failure(exc: BaseException) -> str:
    """What failed in coremltools' loader, in one line, also for an exception without a message.

    A bare ``assert`` in an op's type inference has no text: the op being read (from the loader's
    frame) and the failed source line say what went wrong.
    """
    import traceback

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    op = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "_load_operation":
            op_spec = tb.tb_frame.f_locals.get("op_spec")
            if op_spec is not None:
                outputs = [out.name for out in getattr(op_spec, "outputs", [])]
                op = f"op {op_spec.type}" + (f" (output {outputs[0]!r})" if outputs else "")
        tb = tb.tb_next
    frames = traceback.extract_tb(exc.__traceback__)
    line = frames[-1].line.strip() if frames and frames[-1].line else ""
    detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__ + (f" ({line})" if line else "")
    return f"{op} failed: {detail}" if op else detail
