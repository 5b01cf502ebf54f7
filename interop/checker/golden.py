"""Golden files: saved inputs and reference outputs in one .npz, usable as a check's reference.

Layout (plain arrays, no pickles): ``input/NAME`` for every input, ``output/NAME``
for every reference output, optionally ``candidate/NAME`` (failure files keep the
candidate's outputs too), and ``__interop_check__``, a JSON string describing
the file: its kind, the reference model and engine, and the runs (batch sizes)
the outputs were computed with. ``--inputs`` accepts these files as well and
takes their ``input/`` arrays.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interop.output_files import atomic_output, check_report_destination
from interop.plugin_api import InteropError

META_KEY = "__interop_check__"
INPUT_PREFIX = "input/"
OUTPUT_PREFIX = "output/"
CANDIDATE_PREFIX = "candidate/"


@dataclass
class GoldenData:
    """The contents of a golden or failure file."""

    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)
    candidate: dict[str, np.ndarray] = field(default_factory=dict)


def is_layout(arrays: Mapping[str, np.ndarray]) -> bool:
    """True when the arrays come from a golden/failure file rather than a plain inputs file."""
    return META_KEY in arrays


def split_layout(arrays: Mapping[str, np.ndarray], source: str) -> GoldenData:
    """Sort a golden file's arrays into inputs, outputs and candidate outputs."""
    try:
        meta = json.loads(str(arrays[META_KEY]))
    except (KeyError, ValueError):
        raise InteropError(f"{source} is not an interop golden file (no readable {META_KEY})") from None
    _check_meta(meta, source)
    data = GoldenData({}, {}, meta)
    for key, value in arrays.items():
        for prefix, target in ((INPUT_PREFIX, data.inputs), (OUTPUT_PREFIX, data.outputs),
                               (CANDIDATE_PREFIX, data.candidate)):
            if key.startswith(prefix):
                target[key[len(prefix):]] = value
    if not data.inputs:
        raise InteropError(f"{source} holds no inputs")
    for name, value in (*data.inputs.items(), *data.outputs.items(), *data.candidate.items()):
        if value.dtype.kind not in "biufcUS":
            raise InteropError(f"{source}: array {name} holds {value.dtype}, not numbers or strings",
                               hint="a golden file holds plain numeric or string arrays")
    return data


def _check_meta(meta: Any, source: str) -> None:
    """The description entry must be a JSON object whose ``runs`` (if any) are positive integers."""
    if not isinstance(meta, dict):
        raise InteropError(f"{source}: {META_KEY} must be a JSON object, got {type(meta).__name__}")
    runs = meta.get("runs", [])
    if not isinstance(runs, list) or any(isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in runs):
        raise InteropError(f"{source}: {META_KEY} runs must be a list of positive integers, got {runs!r}")
    for key in ("reference", "inputs"):
        if key in meta and not isinstance(meta[key], dict):
            raise InteropError(f"{source}: {META_KEY} {key} must be a JSON object")


def read(path: Path) -> GoldenData:
    """Load a golden file; refuses plain .npz files with a hint."""
    from interop.checker.inputs import load_npz

    arrays = load_npz(Path(path), what="golden file")
    if not is_layout(arrays):
        raise InteropError(
            f"{path} is not a golden file (it has no {META_KEY} entry)",
            hint="write one with `interop check REFERENCE --save-golden FILE.npz`",
        )
    data = split_layout(arrays, f"golden file {path}")
    if not data.outputs:
        raise InteropError(f"golden file {path} holds no outputs")
    return data


def check_save_path(path: str | Path, what: str = "--save-golden") -> None:
    """Fail fast (exit 2) when a golden file cannot be saved at ``path`` (a directory, a link...).

    Call it before any model runs; :func:`write` refuses the same paths, later.
    """
    check_report_destination(Path(path), what)


def write(path: Path, data: GoldenData, force: bool = True) -> None:
    """Write ``data`` atomically at ``path`` (a .npz); a directory or a link there is refused (exit 2)."""
    arrays: dict[str, np.ndarray] = {META_KEY: np.array(json.dumps(data.meta, sort_keys=True))}
    for prefix, source in ((INPUT_PREFIX, data.inputs), (OUTPUT_PREFIX, data.outputs),
                           (CANDIDATE_PREFIX, data.candidate)):
        for name, value in source.items():
            arrays[prefix + name] = np.asarray(value)
    with atomic_output(Path(path), force=force) as tmp:
        # np.savez appends .npz to names without it; write through a handle to keep the exact name.
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
