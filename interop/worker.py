"""The worker interop starts inside a plugin's separate Python environment.

Run as ``python -m interop.worker REQUEST.json`` by :mod:`interop.environments`. It
uses only the standard library, numpy and interop's plugin API, so the environment
needs nothing but numpy and the plugin's framework. It performs one request --
convert, train, or serve (load a model, then run each batch the host sends as a
JSON line on stdin) -- writes a JSON response file, and reports progress and
replies as ``@interop-event {json}`` lines on stdout. Everything else the plugin or its
framework prints goes to stderr, so progress lines cannot be corrupted.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

import numpy as np

EVENT_PREFIX = "@interop-event "


def _events_channel() -> TextIO:
    """Keep the real stdout for events; point fd 1 (C and Python prints) to stderr."""
    events = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return events


def _spec(spec: Any) -> dict[str, Any]:
    shape = [d if isinstance(d, int) or d is None else str(d) for d in spec.shape]
    bounds = getattr(spec, "max_shape", None)
    return {"name": spec.name, "dtype": str(spec.dtype), "shape": shape,
            "max_shape": None if bounds is None else [d if isinstance(d, int) else None for d in bounds]}


def _load_arrays(path: str, names: list[str]) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as stored:
        return {name: stored[f"a{i}"] for i, name in enumerate(names)}


def _emit(events: TextIO, event: dict[str, Any]) -> None:
    events.write(EVENT_PREFIX + json.dumps(event) + "\n")
    events.flush()


def _error(exc: BaseException) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "bases": [cls.__name__ for cls in type(exc).__mro__],
        "message": getattr(exc, "message", None) or str(exc) or type(exc).__name__,
        "hint": getattr(exc, "hint", None),
    }


def _serve_one(session: Any, request: dict[str, Any]) -> dict[str, Any]:
    """Run one batch for a serving worker; an error is returned, not raised."""
    try:
        outputs = session.run(_load_arrays(request["feeds"], request["feed_names"]))
        names = list(outputs)
        for name in names:  # the host reads plain arrays only; say so here, with the name
            if np.asarray(outputs[name]).dtype.hasobject:
                raise TypeError(f"output {name!r} holds Python objects, not numbers")
        np.savez(request["outputs"], **{f"a{i}": np.asarray(outputs[n]) for i, n in enumerate(names)})
        return {"output_names": names}
    except Exception as exc:  # noqa: BLE001 - the session stays usable for the next run
        traceback.print_exc()
        return {"error": _error(exc)}


def handle(request: dict[str, Any], events: TextIO) -> dict[str, Any]:
    from interop.plugin_api import TrainConfig, TrainData, resolve

    impl = resolve(request["impl"])
    action = request["action"]
    if action == "convert":
        impl(Path(request["src"]), Path(request["dst"]), request["options"])
        return {}
    if action == "serve":
        session = impl(Path(request["path"]))
        _emit(events, {
            "kind": "ready",
            "engine": session.engine,
            "inputs": [_spec(s) for s in session.inputs],
            "outputs": [_spec(s) for s in session.outputs],
            "versions": {**session.versions, "python": sys.version.split()[0]},
        })
        for line in sys.stdin:  # one run per line until the host closes stdin
            _emit(events, {"kind": "reply", **_serve_one(session, json.loads(line))})
        return {}
    if action == "train":
        arrays = _load_arrays(request["data"], request["data_names"])
        data = TrainData(**arrays, class_names=tuple(request["class_names"]),
                         feature_names=tuple(request["feature_names"]),
                         input_name=request.get("input_name", "petal"))
        config = TrainConfig(**request["config"])

        def on_epoch(epoch: int, loss: float, accuracy: float) -> None:
            _emit(events, {"kind": "epoch", "epoch": epoch, "loss": float(loss),
                           "accuracy": float(accuracy)})

        result = impl(Path(request["dst"]), data, config, on_epoch)
        return {"result": asdict(result)}
    raise ValueError(f"unknown worker action {action!r}")


def main(argv: list[str]) -> int:
    events = _events_channel()
    request = json.loads(Path(argv[1]).read_text())
    response_path = Path(request["response"])
    try:
        response = handle(request, events)
        code = 0
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the host
        traceback.print_exc()
        response = {"error": _error(exc)}
        code = 1
    response_path.write_text(json.dumps(response))
    events.flush()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
