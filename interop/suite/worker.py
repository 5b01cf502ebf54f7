"""One suite entry, run in its own process: ``python -m interop.suite.worker SPEC.json OUT_DIR``.

The entry is converted with :func:`interop.convert` into ``OUT_DIR`` and checked
with :func:`interop.check` against its source model (or the source model against
its golden file), and ``OUT_DIR/result.json`` records what happened — the route
and hops, the check report's JSON document, or the error. A converter that
crashes the interpreter or hangs only ends this process: the parent
(:mod:`interop.suite.process`) sees no result and reports the crash or timeout.
Library chatter goes to the log the parent keeps beside the result.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

RESULT_FILE = "result.json"
GOLDEN_FILE = "golden.npz"
#: Check options a golden file replaces (it brings its own inputs).
INPUT_OPTIONS = ("inputs", "dataset", "seed", "value_range", "samples", "batch_sizes", "max_batch", "input_shapes")


def artifact_name(model: Path, target: dict[str, Any], registry: Any) -> str:
    """``iris.onnx``, or ``iris.fp16.onnx`` for a target named fp16: stem, name, suffix."""
    declared = registry.formats[target["format"]].item
    suffixes = (*declared.extensions, *declared.directory_suffixes)
    stem = model.name.split(".")[0] or "model"
    label = stem if target["name"] == target["format"] else f"{stem}.{target['name']}"
    return f"{label}{suffixes[0] if suffixes else ''}"


def check_options(spec: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """The keyword arguments of interop.check for this entry."""
    options = dict(spec.get("check", {}))
    target = spec.get("target") or {}
    tolerance = target.get("tolerance", {})
    for key in ("atol", "rtol"):
        if key in tolerance:
            options[key] = tolerance[key]
    if "tolerances" in tolerance:
        options["tolerances"] = {**options.get("tolerances", {}), **tolerance["tolerances"]}
    stats = _error_stats(options.pop("error_stats", None), tolerance.get("error_stat"))
    if stats:
        options["error_stats"] = stats
    if "tolerances" in options:
        options["tolerances"] = {name: tuple(pair) for name, pair in options["tolerances"].items()}
    if isinstance(options.get("value_range"), list):
        options["value_range"] = tuple(options["value_range"])
    options["project_config"] = spec.get("pyproject") or False
    options["save_failures"] = out_dir / "failures"
    return options


def _error_stats(*layers: str | dict[str, str] | None) -> list[str]:
    """The model's then the target's ``error_stat`` as check's ``["STAT", "OUTPUT=STAT"]`` (later layers win)."""
    general: str | None = None
    per_output: dict[str, str] = {}
    for layer in layers:
        if isinstance(layer, str):
            general = layer
        elif isinstance(layer, dict):
            per_output.update(layer)
    return ([general] if general else []) + [f"{name}={stat}" for name, stat in per_output.items()]


def _stable_failure_files(document: dict[str, Any], out_dir: Path, target: dict[str, Any] | None) -> dict[str, Any]:
    """Name failure files ``TARGET--OUTPUT.npz`` instead of after the candidate's (temporary) path.

    interop check names them after the candidate's label, which here holds the worker's
    scratch folder: a name that differs from run to run and machine to machine.
    """
    import re

    renames = {}
    for pair in document.get("pairs", []):
        for out in pair.get("outputs", []):
            old = out.get("failure_file")
            if not old or not Path(old).is_file():
                continue
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{(target or {}).get('name', 'golden')}--{out.get('name')}")
            new = Path(old).with_name(f"{safe}.npz")
            if new != Path(old) and not new.exists():
                Path(old).rename(new)
                renames[old] = str(new)
    if not renames:
        return document
    text = json.dumps(document)
    for old, new in renames.items():
        text = text.replace(json.dumps(old)[1:-1], json.dumps(new)[1:-1])
    return json.loads(text)


def run(spec: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """Convert and check one entry; the result document (never raises for the entry's own errors)."""
    import interop
    from interop.plugin_registry import get_registry

    result: dict[str, Any] = {"status": "error", "error": None, "conversion": None, "check": None}
    stage = "convert"
    started = time.perf_counter()
    try:
        registry = get_registry()
        model = Path(spec["model"])
        options = check_options(spec, out_dir)
        target = spec.get("target")
        if target is None:  # the model against its golden file
            stage = "check"
            if spec.get("update_golden"):
                report = interop.check(model, [], save_golden=out_dir / GOLDEN_FILE, **options)
                result["golden_written"] = GOLDEN_FILE
            else:
                for name in INPUT_OPTIONS:
                    options.pop(name, None)
                report = interop.check(None, [model], golden=spec["golden"], **options)
        else:
            artifact = out_dir / artifact_name(model, target, registry)
            converted = interop.convert(model, artifact, to=target["format"], from_format=spec.get("source_format"),
                                        options=target.get("options") or {}, registry=registry)
            # convert --json's hops, without the paths of this worker's folder (results are cached).
            hops = [{key: value for key, value in hop.items() if key != "output"}
                    for hop in converted.to_dict()["hops"]]
            result["conversion"] = {"route": converted.route, "hops": hops, "artifact": artifact.name}
            stage = "check"
            candidate = f"{artifact}@{target['runtime']}" if target.get("runtime") else artifact
            report = interop.check(model, [candidate], **options)
        result["check"] = _stable_failure_files(report.to_dict(), out_dir, target)
        result["status"] = "passed" if report.passed else "failed"
    except BaseException as exc:  # noqa: BLE001 - every failure of the entry becomes its result
        if isinstance(exc, (SystemExit, KeyboardInterrupt)) and not isinstance(exc, Exception):
            raise
        traceback.print_exc()
        result["error"] = {
            "stage": stage,
            "type": type(exc).__name__,
            "message": getattr(exc, "message", None) or str(exc) or type(exc).__name__,
            "hint": getattr(exc, "hint", None),
            "exit_code": getattr(exc, "exit_code", 4),
        }
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result


def main(argv: list[str]) -> int:
    spec_path, out_dir = Path(argv[0]), Path(argv[1])
    spec = json.loads(spec_path.read_text())
    result = run(spec, out_dir)
    (out_dir / (RESULT_FILE + ".tmp")).write_text(json.dumps(result, indent=1, default=str))
    (out_dir / (RESULT_FILE + ".tmp")).replace(out_dir / RESULT_FILE)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
