"""Reading a saved Core ML model from disk into a MIL Program.

The file is read the way an app receives it: the ``.mlpackage`` directory's
Manifest.json names the root model spec (``model.mlmodel``) and the weights
folder; the spec is parsed from its protobuf bytes and handed, together with
the weight-blob directory, to coremltools' loader of saved programs
(``coremltools.converters.mil.frontend.milproto.load``).  No in-memory builder
object from a conversion is ever used.
"""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass
from typing import Any

from .errors import LegacyModelError, ModelFormatError

CORE_ML_AUTHOR = "com.apple.CoreML"


@dataclass
class SavedModel:
    """A parsed Core ML model: the protobuf spec, its MIL program and where its weights live."""

    path: pathlib.Path
    spec: Any  # coremltools.proto.Model_pb2.Model
    program: Any  # coremltools.converters.mil.mil.Program
    weights_dir: pathlib.Path | None


def _locate_in_package(package: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path | None]:
    """Spec file and weights directory of an ``.mlpackage``, found through its Manifest.json."""
    manifest_path = package / "Manifest.json"
    if not manifest_path.is_file():
        raise ModelFormatError(f"{package} is a directory but has no Manifest.json; not an .mlpackage")
    try:
        manifest = json.loads(manifest_path.read_text())
        entries = manifest["itemInfoEntries"]
        root_entry = entries[manifest["rootModelIdentifier"]]
    except (ValueError, KeyError) as exc:
        raise ModelFormatError(f"{manifest_path} is not a valid Core ML package manifest: {exc}") from exc
    data_dir = package / "Data"
    spec_path = data_dir / root_entry["path"]
    weights_dir = None
    for entry in entries.values():
        if entry.get("name") == "weights" and entry.get("author", CORE_ML_AUTHOR) == CORE_ML_AUTHOR:
            weights_dir = data_dir / entry["path"]
    if weights_dir is None:
        # coremltools always writes the weights next to the spec; fall back to that location.
        weights_dir = spec_path.parent / "weights"
    if not spec_path.is_file():
        raise ModelFormatError(f"{package}: the manifest names {spec_path} but it does not exist")
    return spec_path, weights_dir if weights_dir.is_dir() else None


def read_spec(spec_path: pathlib.Path) -> Any:
    """Parse a serialized Core ML ``Model`` protobuf."""
    from coremltools import proto

    spec = proto.Model_pb2.Model()
    try:
        spec.ParseFromString(spec_path.read_bytes())
    except Exception as exc:  # protobuf raises its own DecodeError type
        raise ModelFormatError(f"{spec_path} is not a Core ML model spec: {exc}") from exc
    return spec


def load_saved_model(path: str | pathlib.Path) -> SavedModel:
    """Read ``path`` (an ``.mlpackage`` directory, or a bare spec file) into a MIL Program.

    Raises LegacyModelError for NeuralNetwork / pipeline / classic ML models and
    ModelFormatError for anything unreadable.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        spec_path, weights_dir = _locate_in_package(path)
    elif path.is_file():
        spec_path, weights_dir = path, None
        sibling_weights = path.parent / "weights"
        if sibling_weights.is_dir():
            weights_dir = sibling_weights
    else:
        raise ModelFormatError(f"{path} does not exist")

    spec = read_spec(spec_path)
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
