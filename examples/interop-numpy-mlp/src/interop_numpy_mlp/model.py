"""The NumPy MLP itself: its files, its forward pass, and cheap recognition of the format."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from interop.plugin_api import ModelLoadError

ARCH_FILE = "mlp.json"
WEIGHTS_FILE = "weights.npz"
ACTIVATIONS = {"relu": lambda x: np.maximum(x, 0), None: lambda x: x}


@dataclass
class MLP:
    """``y = L_n(...act(L_1((x - mean) / std)))`` with ``L_i(x) = x @ W_i + b_i``."""

    input_name: str
    output_name: str
    mean: np.ndarray
    std: np.ndarray
    weights: list[np.ndarray]
    biases: list[np.ndarray]
    activations: list[str | None]

    def forward(self, x: np.ndarray) -> np.ndarray:
        h = (x.astype(np.float32) - self.mean) / self.std
        for w, b, act in zip(self.weights, self.biases, self.activations):
            h = ACTIVATIONS[act](h @ w + b)
        return h.astype(np.float32)

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        arch = {
            "format": "numpy-mlp", "version": 1,
            "input": {"name": self.input_name, "size": int(self.weights[0].shape[0])},
            "output": {"name": self.output_name, "size": int(self.weights[-1].shape[1])},
            "layers": [{"units": int(w.shape[1]), "activation": a}
                       for w, a in zip(self.weights, self.activations)],
        }
        (path / ARCH_FILE).write_text(json.dumps(arch, indent=2))
        arrays = {"mean": self.mean, "std": self.std}
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            arrays[f"w{i}"], arrays[f"b{i}"] = w, b
        np.savez(path / WEIGHTS_FILE, **arrays)


def _outside_link(path: Path, name: str) -> str | None:
    """Why ``path/name`` must not be read: a link leading out of the model folder."""
    entry = path / name
    if not entry.is_symlink():
        return None
    try:
        inside = path.resolve() in entry.resolve().parents
    except (OSError, RuntimeError):  # a loop of links
        inside = False
    return None if inside else f"{name} is a link to a file outside the model folder"


def sniff(path: Path) -> str | None:
    """None when ``path`` is a numpy-mlp directory, else why not (reads mlp.json only)."""
    for name in (ARCH_FILE, WEIGHTS_FILE):
        if (reason := _outside_link(path, name)) is not None:
            return reason
    arch = path / ARCH_FILE
    if not arch.is_file():
        return f"it has no {ARCH_FILE}"
    try:
        data = json.loads(arch.read_text())
    except (ValueError, UnicodeDecodeError):
        return f"{ARCH_FILE} is not JSON"
    if not isinstance(data, dict) or data.get("format") != "numpy-mlp":
        return f"{ARCH_FILE} does not say format numpy-mlp"
    if not (path / WEIGHTS_FILE).is_file():
        return f"it has no {WEIGHTS_FILE}"
    return None


def load_mlp(path: Path) -> MLP:
    reason = sniff(path)
    if reason:
        raise ModelLoadError(f"{path}: not a numpy-mlp model: {reason}")
    arch = json.loads((path / ARCH_FILE).read_text())
    try:
        # Never unpickle: an object array in the file is refused, not loaded.
        with np.load(path / WEIGHTS_FILE, allow_pickle=False) as stored:
            arrays = {k: stored[k].astype(np.float32) for k in stored.files}
    except (OSError, ValueError, EOFError) as exc:
        raise ModelLoadError(f"{path}: {WEIGHTS_FILE} is not a plain .npz of numbers: {exc}") from None
    layers = arch.get("layers")
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        raise ModelLoadError(f"{path}: {ARCH_FILE} has no list of layers")
    try:
        weights = [arrays[f"w{i}"] for i in range(len(layers))]
        biases = [arrays[f"b{i}"] for i in range(len(layers))]
        mean, std = arrays["mean"], arrays["std"]
    except KeyError as exc:
        raise ModelLoadError(f"{path}: {WEIGHTS_FILE} lacks array {exc}") from None
    for layer in layers:
        activation = layer.get("activation")
        if not isinstance(activation, (str, type(None))) or activation not in ACTIVATIONS:
            raise ModelLoadError(f"{path}: unknown activation {activation!r}")
    return MLP(arch["input"]["name"], arch["output"]["name"], mean, std, weights, biases,
               [layer.get("activation") for layer in layers])
