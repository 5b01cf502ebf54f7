"""The ``torch-source`` format: an editable PyTorch model as a folder of source code and weights.

A folder holds ``model.py`` (one nn.Module class written by the importer), ``weights.safetensors``
(its state dict) and ``torch-source.json`` (the class name, the inputs and outputs, where every
parameter came from, the import's notes). Recognising and sniffing a folder reads only the JSON
and the safetensors header; no code runs.

**Loading a folder runs its model.py**, which is arbitrary Python once the folder leaves
interop's hands. interop therefore runs one only when asked:

* ``interop_torch.onnx_import.load_torch_source(folder)`` -- the user's explicit call;
* the ``torch-source`` runtime (``interop check``) when ``INTEROP_TRUST_MODEL_CODE=1`` is set, or
  when the folder's model.py is byte-for-byte code this process wrote (``interop convert --check``
  checking the folder it just converted). Otherwise it refuses with exit 2 and says how to opt in.

The code is read and compiled from the bytes that were checked: no ``__pycache__`` is read
or written, so a planted ``.pyc`` cannot stand in for the source.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from interop.plugin_api import ModelLoadError, TensorSpec

FORMAT_NAME = "torch-source"
CONFIG_FILE = "torch-source.json"
MODEL_FILE = "model.py"
WEIGHTS_FILE = "weights.safetensors"
FORMAT_TAG = "interop-torch-source"
FORMAT_VERSION = 1
TRUST_ENV = "INTEROP_TRUST_MODEL_CODE"
_MAX_CONFIG_BYTES = 64 << 20
_MAX_SOURCE_BYTES = 16 << 20
_MAX_HEADER_BYTES = 100 << 20
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

#: sha256 of every model.py this process wrote: code interop generated may run without opt-in.
_WRITTEN: set[str] = set()


# ------------------------------------------------------------------ reading without running


def _regular_file(folder: Path, name: str) -> Path:
    path = folder / name
    if path.is_symlink():
        raise ModelLoadError(f"{folder}: {name} is a symbolic link; interop reads only files inside the folder")
    if not path.is_file():
        raise ModelLoadError(f"{folder}: no {name}", hint="a torch-source folder is what "
                             "`interop convert MODEL.onnx -o DIR --to torch-source` writes")
    return path


def read_config(folder: Path) -> dict[str, Any]:
    """torch-source.json, checked (strict JSON, the fields interop uses, well-formed names)."""
    path = _regular_file(folder, CONFIG_FILE)
    if path.stat().st_size > _MAX_CONFIG_BYTES:
        raise ModelLoadError(f"{folder}: {CONFIG_FILE} is larger than interop reads")

    def no_constants(name: str) -> Any:
        raise ValueError(f"non-standard number {name}")

    try:
        config = json.loads(path.read_text(encoding="utf-8"), parse_constant=no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelLoadError(f"{folder}: {CONFIG_FILE} is not valid JSON ({str(exc)[:120]})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT_TAG:
        raise ModelLoadError(f"{folder}: {CONFIG_FILE} does not describe a torch-source model")
    if config.get("version") != FORMAT_VERSION:
        raise ModelLoadError(f"{folder}: torch-source version {str(config.get('version'))[:20]}; "
                             f"interop reads version {FORMAT_VERSION}")
    if not isinstance(config.get("class"), str) or not _IDENTIFIER.match(config["class"]):
        raise ModelLoadError(f"{folder}: {CONFIG_FILE}: 'class' is not a Python class name")
    for key in ("inputs", "outputs"):
        specs = config.get(key)
        if not isinstance(specs, list) or not specs or not all(_valid_spec(s) for s in specs):
            raise ModelLoadError(f"{folder}: {CONFIG_FILE}: {key!r} is not a list of tensors (name, dtype, shape)")
    return config


def _valid_spec(spec: Any) -> bool:
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not isinstance(spec.get("dtype"), str):
        return False
    try:
        np.dtype(spec["dtype"])
    except TypeError:
        return False
    shape = spec.get("shape")
    return isinstance(shape, list) and all(d is None or isinstance(d, (int, str)) for d in shape)


def _check_weights_header(folder: Path) -> None:
    path = _regular_file(folder, WEIGHTS_FILE)
    size = path.stat().st_size
    with open(path, "rb") as stream:
        head = stream.read(8)
        if len(head) < 8:
            raise ModelLoadError(f"{folder}: {WEIGHTS_FILE} is truncated")
        (length,) = struct.unpack("<Q", head)
        if length > min(_MAX_HEADER_BYTES, size - 8):
            raise ModelLoadError(f"{folder}: {WEIGHTS_FILE} declares a {length}-byte header in a {size}-byte file")
        try:
            header = json.loads(stream.read(length).decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise ModelLoadError(f"{folder}: {WEIGHTS_FILE} has no valid safetensors header") from None
    if not isinstance(header, dict):
        raise ModelLoadError(f"{folder}: {WEIGHTS_FILE} has no valid safetensors header")
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(o, int) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= size - 8 - length):
            raise ModelLoadError(f"{folder}: {WEIGHTS_FILE}: tensor {name[:80]!r} lies outside the file")


def sniff(path: Path) -> str | None:
    """None when ``path`` looks like a torch-source folder (JSON and safetensors header only; no code runs)."""
    try:
        read_config(path)
        _regular_file(path, MODEL_FILE)
        _check_weights_header(path)
    except ModelLoadError as error:
        return error.message.split(": ", 1)[-1]
    return None


def specs(config: Mapping[str, Any], key: str) -> list[TensorSpec]:
    return [TensorSpec(s["name"], s["dtype"], tuple(s["shape"])) for s in config[key]]


# ------------------------------------------------------------------ running (the user's choice)


def _source_bytes(folder: Path) -> bytes:
    path = _regular_file(folder, MODEL_FILE)
    if path.stat().st_size > _MAX_SOURCE_BYTES:
        raise ModelLoadError(f"{folder}: {MODEL_FILE} is larger than interop reads")
    return path.read_bytes()


def digest(source: bytes) -> str:
    return hashlib.sha256(source).hexdigest()


def trusted(source: bytes) -> bool:
    """May interop's runtime run this model.py? Only code this process wrote, or everything when the user said so."""
    return os.environ.get(TRUST_ENV) == "1" or digest(source) in _WRITTEN


def load_module(folder: Path, strict: bool = True, source: bytes | None = None) -> Any:
    """Run the folder's model.py and return its class, instantiated, with the weights loaded (train mode).

    ``strict=False`` loads every weight whose name and shape still fit, so layers added or
    resized in an edited model.py keep their own initialisation.
    """
    import torch
    from safetensors.torch import load_file

    folder = Path(folder)
    config = read_config(folder)
    _check_weights_header(folder)
    source = _source_bytes(folder) if source is None else source
    filename = str(folder / MODEL_FILE)
    module = types.ModuleType(f"interop_torch_source_{digest(source)[:12]}")
    module.__file__ = filename
    try:
        code = compile(source, filename, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as error:
        raise ModelLoadError(f"{folder}: {MODEL_FILE} does not compile: {getattr(error, 'msg', error)} "
                             f"(line {getattr(error, 'lineno', '?')})") from None
    try:
        exec(code, module.__dict__)  # noqa: S102 - the user asked for this folder's code to run
        model_class = getattr(module, config["class"], None)
        if not (isinstance(model_class, type) and issubclass(model_class, torch.nn.Module)):
            raise ModelLoadError(f"{folder}: {MODEL_FILE} defines no nn.Module class {config['class']!r}",
                                 hint=f"{CONFIG_FILE} names the class to load ('class')")
        instance = model_class()
    except ModelLoadError:
        raise
    except Exception as error:  # noqa: BLE001 - the folder's own code failed: bad input, not an interop fault
        raise ModelLoadError(f"{folder}: running {MODEL_FILE} failed: {type(error).__name__}: "
                             f"{str(error).strip()[:200]}", hint="INTEROP_DEBUG=1 shows the traceback") from error
    try:
        weights = load_file(str(folder / WEIGHTS_FILE))
    except Exception as error:  # noqa: BLE001 - safetensors' own errors
        raise ModelLoadError(f"{folder}: {WEIGHTS_FILE} cannot be read ({str(error)[:160]})") from None
    if not strict:  # an edited architecture: load what still fits by name and shape (a swapped head keeps its init)
        own = instance.state_dict()
        weights = {k: v for k, v in weights.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    try:
        instance.load_state_dict(weights, strict=strict)
    except RuntimeError as error:
        raise ModelLoadError(f"{folder}: the weights do not fit {config['class']}: "
                             f"{' '.join(str(error).split())[:300]}",
                             hint="load with strict=False to keep the initialisation of layers you added") from None
    return instance


class TorchSourceSession:
    """The torch-source runtime: the folder's module in eval mode, on the CPU."""

    def __init__(self, folder: Path):
        folder = Path(folder)
        config = read_config(folder)
        source = _source_bytes(folder)
        if not trusted(source):
            raise ModelLoadError(
                f"{folder}: refused: {MODEL_FILE} is Python code, and interop runs a model's code only when asked",
                hint=f"if you would run {folder / MODEL_FILE} yourself, set {TRUST_ENV}=1 "
                     "(or load it in Python with interop_torch.onnx_import.load_torch_source)",
            )
        import torch

        self._module = load_module(folder, source=source).eval()
        self.inputs = specs(config, "inputs")
        self.outputs = specs(config, "outputs")
        self.engine = "torch (eager CPU, torch-source model.py)"
        self.versions = {"torch": torch.__version__}

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        from interop_torch.runtime import run_module

        return run_module(self._module, self.inputs, self.outputs, feeds)


def load(path: Path) -> TorchSourceSession:
    return TorchSourceSession(path)


# ------------------------------------------------------------------ writing


def onnx_to_torch_source(src: Path, dst: Path, options: Mapping[str, Any]) -> None:
    """Converter onnx -> torch-source: write the folder ``dst`` from the ONNX file ``src``."""
    from safetensors.numpy import save_file

    from interop_torch.onnx_import import load_onnx
    from interop_torch.onnx_import.build import instantiate, plan_import
    from interop_torch.onnx_import.export import print_notes

    model = load_onnx(src)
    plan = plan_import(model, trainable=str(options.get("trainable") or "auto"),
                       class_name=options.get("class_name") or None)
    if plan.class_name and not _IDENTIFIER.match(plan.class_name):
        raise ModelLoadError(f"class_name {plan.class_name!r} is not a Python class name")
    instantiate(plan)  # the generated code compiles and its weights fit before anything is written
    source = plan.source.replace(
        '"""\n\nimport torch',
        f"Load it with its weights:\n\n    model = {plan.class_name}()\n"
        f'    model.load_state_dict(safetensors.torch.load_file("{WEIGHTS_FILE}"))\n"""\n\nimport torch', 1)
    dst = Path(dst)
    dst.mkdir()
    encoded = source.encode("utf-8")
    (dst / MODEL_FILE).write_bytes(encoded)
    save_file({key: np.ascontiguousarray(entry.array) for key, entry in plan.state.items()},
              str(dst / WEIGHTS_FILE), metadata={"format": "pt", "producer": "interop-torch"})
    config = {
        "format": FORMAT_TAG, "version": FORMAT_VERSION, "class": plan.class_name,
        "inputs": [{"name": s.name, "dtype": s.dtype, "shape": list(s.shape)} for s in plan.inputs],
        "outputs": [{"name": s.name, "dtype": s.dtype, "shape": list(s.shape)} for s in plan.outputs],
        "source": {"file": Path(src).name, "producer": plan.producer, "opset": plan.opset},
        "weight_count": plan.weight_count, "parameters": plan.parameter_sources(), "notes": plan.notes,
    }
    (dst / CONFIG_FILE).write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
    _WRITTEN.add(digest(encoded))
    print_notes(plan.notes)
