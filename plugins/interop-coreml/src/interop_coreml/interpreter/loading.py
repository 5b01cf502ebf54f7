"""Reading a saved Core ML model from disk into a MIL Program.

The file is read the way an app receives it: the ``.mlpackage`` directory's
Manifest.json names the root model spec (``model.mlmodel``) and the weights
folder; the spec is parsed from its protobuf bytes and handed, together with
the weight-blob directory, to coremltools' loader of saved programs
(``coremltools.converters.mil.frontend.milproto.load``).  No in-memory builder
object from a conversion is ever used.  Before anything is parsed, the package
is confined to its own folder (:mod:`interop_coreml.package`): no symlinks, no
manifest or weight path leading outside it.
"""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass
from typing import Any

from ..package import PackageError, check_weight_references, confined_path, validate_package
from .errors import LegacyModelError, ModelFormatError


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

    from coremltools.converters.mil.frontend.milproto.load import load as load_milproto

    try:
        program = load_milproto(
            spec,
            specification_version=spec.specificationVersion,
            file_weights_dir=str(weights_dir) if weights_dir is not None else "",
        )
    except AttributeError as exc:
        # The loader rebuilds each op through the MIL builder; an op type that
        # this coremltools does not define surfaces as a missing builder attribute.
        raise ModelFormatError(
            f"coremltools could not read the ML Program in {path}: {exc}"
        ) from exc
    except Exception as exc:
        raise ModelFormatError(f"coremltools could not read the ML Program in {path}: {exc}") from exc
    return SavedModel(path=path, spec=spec, program=program, weights_dir=weights_dir)
