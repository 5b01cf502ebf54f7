"""Overhead of `interop check` itself: checking the reference MLP on 100,000 samples vs bare inference.

Trains the reference MLP with Keras, converts it to ONNX, then measures

* bare: the sum of the two runtimes' ``Session.run`` times on exactly the inputs
  and batches the check feeds (sessions loaded beforehand, not timed);
* api: ``interop.check(model.keras, model.onnx, samples=100_000)`` in this
  process (frameworks already imported; includes loading both models);
* cli: ``interop check model.keras model.onnx --samples 100000`` as a fresh
  process (includes starting Python and importing TensorFlow).

and prints each as a ratio to bare. Usage::

    python benchmarks/bench_check_overhead.py [--samples 100000] [--framework keras|torch]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def bare_inference_seconds(models: list[Path], samples: int) -> tuple[float, float]:
    """(load seconds, run seconds) of the models' sessions on the inputs a check would feed."""
    from interop.checker.inputs import random_inputs
    from interop.checker.models import open_model, parse_model_arg
    from interop.registry import get_registry

    registry = get_registry()
    load = run = 0.0
    input_set = None
    for path in models:
        started = time.perf_counter()
        model = open_model(parse_model_arg(str(path), registry), {}, registry)
        load += time.perf_counter() - started
        if input_set is None:
            input_set = random_inputs(model.session.inputs, samples=samples)
        for feeds in input_set.runs():
            started = time.perf_counter()
            model.session.run(feeds)
            run += time.perf_counter() - started
    return load, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--framework", default="keras", choices=["keras", "torch"])
    args = parser.parse_args()

    import interop

    folder = Path(tempfile.mkdtemp(prefix="bench-check-"))
    try:
        source = folder / ("mlp.keras" if args.framework == "keras" else "mlp.pt2")
        converted = folder / "mlp.onnx"
        interop.train(args.framework, source, epochs=2)
        interop.convert(source, converted)
        models = [source, converted]

        interop.check(source, [converted], samples=100, project_config=False)  # warm-up: imports, first graphs
        load, bare = bare_inference_seconds(models, args.samples)

        started = time.perf_counter()
        report = interop.check(source, [converted], samples=args.samples, project_config=False)
        api = time.perf_counter() - started
        assert report.passed, report.format_table()

        interop_cli = Path(sys.executable).with_name("interop")
        command = [str(interop_cli) if interop_cli.exists() else sys.executable, *([] if interop_cli.exists()
                   else ["-m", "interop"]), "check", str(source), str(converted),
                   "--samples", str(args.samples), "--quiet", "--no-project-config"]
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, cwd=folder)
        cli = time.perf_counter() - started
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    print(f"reference MLP ({args.framework} vs its ONNX conversion), {args.samples} samples, "
          f"runs {report.inputs[0]['runs'][:4]}...")
    print(f"bare inference (sum of Session.run, both runtimes): {bare:8.3f} s")
    print(f"model loading (both runtimes, not in bare):          {load:8.3f} s")
    print(f"interop.check in process:                            {api:8.3f} s  ratio {api / bare:6.2f}x bare, "
          f"{api / (bare + load):5.2f}x bare+load")
    print(f"interop check CLI (fresh process):                   {cli:8.3f} s  ratio {cli / bare:6.2f}x bare")


if __name__ == "__main__":
    main()
