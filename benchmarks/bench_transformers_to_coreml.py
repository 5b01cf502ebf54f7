"""Benchmark: transformers models to Core ML, interop's route against coremltools' own PyTorch frontend.

Builds a BERT-base-sized model (hidden 768, 12 layers, 12 heads, vocabulary 30,522: 110 M
weights) and a small Llama (hidden 768, 6 layers, 12 query and 4 key/value heads, vocabulary
32,000: 87 M weights) from ``transformers`` configs with random weights (nothing is downloaded),
both with a dynamic batch (1..8) and sequence length (2..512), and converts each, in the same run:

* with interop, as a user would: ``interop convert x.pt2 -o x.onnx`` (torch.onnx) and
  ``interop convert x.onnx -o x.mlpackage`` (interop's translator), each hop a measured child
  process (wall time, CPU time, peak RSS); then ``interop check x.pt2 x.mlpackage`` on 2 right-padded 64-token prompts;
* with coremltools' PyTorch frontend, ``ct.convert`` of the ``torch.jit.trace``d model and of the
  ``torch.export`` program, with the same ranges (``ct.RangeDim``), each in a child process;
  where coremltools fails, its error is printed.

CPU time is the figure to compare on a busy machine (wall time grows with the load).

Run:  python benchmarks/bench_transformers_to_coreml.py [--models bert,llama] [--keep DIR] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

import benchlib

MAX_BATCH, MAX_SEQUENCE = 8, 512

#: name -> (transformers class, config class, config keywords, output attribute)
MODELS = {
    "bert": ("BertModel", "BertConfig", dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12,
                                                num_attention_heads=12, intermediate_size=3072,
                                                max_position_embeddings=512), "last_hidden_state"),
    "llama": ("LlamaForCausalLM", "LlamaConfig", dict(vocab_size=32000, hidden_size=768, num_hidden_layers=6,
                                                       num_attention_heads=12, num_key_value_heads=4,
                                                       intermediate_size=2048, max_position_embeddings=1024,
                                                       use_cache=False), "logits"),
}

# The model and its wrapper, written once: the exporting child and coremltools' children build it
# from the same config and seed. The wrapper takes (input_ids, attention_mask) and returns one tensor.
_BUILD = textwrap.dedent('''
    import os, sys
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch, transformers
    model_class, config_class, config, output = {spec!r}
    torch.manual_seed(0)
    model = getattr(transformers, model_class)(getattr(transformers, config_class)(**config)).eval()

    class Wrapped(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return getattr(self.model(input_ids=input_ids, attention_mask=attention_mask), output)

    wrapped = Wrapped(model).eval()
    example = (torch.randint(0, config["vocab_size"], (2, 16)), torch.ones(2, 16, dtype=torch.long))
    batch = torch.export.Dim("batch", min=1, max={max_batch})
    sequence = torch.export.Dim("sequence", min=2, max={max_sequence})
    dynamic = {{"input_ids": {{0: batch, 1: sequence}}, "attention_mask": {{0: batch, 1: sequence}}}}
''')

_EXPORT = _BUILD + textwrap.dedent('''
    program = torch.export.export(wrapped, example, dynamic_shapes=dynamic)
    torch.export.save(program, sys.argv[1])
''')

# coremltools' frontend: torch is imported first, so ct.convert has its PyTorch frontend.
_COREMLTOOLS = _BUILD + textwrap.dedent('''
    import json, time, warnings
    import numpy as np
    import coremltools as ct
    warnings.simplefilter("ignore")
    route = sys.argv[2]
    shape = (ct.RangeDim(1, {max_batch}), ct.RangeDim(2, {max_sequence}))
    inputs = [ct.TensorType(name=n, shape=shape, dtype=np.int32) for n in ("input_ids", "attention_mask")]
    started = time.process_time()
    try:
        with torch.no_grad():
            if route == "trace":
                source = torch.jit.trace(wrapped, example, strict=False)
            else:
                source = torch.export.export(wrapped, example, dynamic_shapes=dynamic).run_decompositions({{}})
        ct.convert(source, inputs=inputs if route == "trace" else None, convert_to="mlprogram",
                   compute_precision=ct.precision.FLOAT32, minimum_deployment_target=ct.target.iOS16,
                   skip_model_load=True).save(sys.argv[1])
        result = {{"cpu_seconds": time.process_time() - started}}
    except Exception as error:
        message = str(error).strip().splitlines()
        result = {{"error": type(error).__name__ + ": " + (message[0] if message else "")[:300]}}
    print("RESULT " + json.dumps(result))
''')


#: --smoke: the same architectures, tiny (to try the script in seconds, not to measure).
SMOKE = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, vocab_size=1000)


def _script(template: str, name: str) -> str:
    model_class, config_class, config, output = MODELS[name]
    if os.environ.get("BENCH_TRANSFORMERS_SMOKE"):
        config = {**config, **SMOKE, **({"num_key_value_heads": 2} if "num_key_value_heads" in config else {})}
    return template.format(spec=(model_class, config_class, config, output), max_batch=MAX_BATCH,
                           max_sequence=MAX_SEQUENCE)


def _interop(*args: str) -> list[str]:
    return [sys.executable, "-m", "interop", *args]


def _coremltools_result(run: benchlib.ProcessRun) -> dict:
    for line in run.output.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return {"error": f"exit {run.returncode}: {run.output.strip().splitlines()[-1:] or ''}"}


def bench_model(name: str, folder: Path, table: benchlib.Table, errors: list[str]) -> None:
    pt2, onnx_path, package = folder / f"{name}.pt2", folder / f"{name}.onnx", folder / f"{name}.mlpackage"
    exported = benchlib.run_measured([sys.executable, "-c", _script(_EXPORT, name), str(pt2)])
    if exported.returncode != 0:
        raise SystemExit(f"torch.export of {name} failed:\n{exported.output[-2000:]}")
    to_onnx = benchlib.run_measured(_interop("convert", str(pt2), "-o", str(onnx_path)))
    to_coreml = benchlib.run_measured(_interop("convert", str(onnx_path), "-o", str(package), "-O",
                                               f"input_shape=input_ids=1..{MAX_BATCH},2..{MAX_SEQUENCE}"))
    for hop, run in (("pt2 -> onnx", to_onnx), ("onnx -> mlpackage", to_coreml)):
        if run.returncode != 0:
            raise SystemExit(f"interop convert {name} ({hop}) failed:\n{run.output[-2000:]}")
    checked = benchlib.run_measured(_interop("check", str(pt2), str(package), "--inputs",
                                             str(_right_padded_inputs(folder / "inputs.npz", name)), "-q"))
    verdict = "passed" if checked.returncode == 0 else f"FAILED (exit {checked.returncode})"
    weights = _weight_count(onnx_path)
    table.add(name, f"{weights / 1e6:.1f}M", "interop: torch.onnx (pt2 -> onnx)", to_onnx.cpu_seconds,
              to_onnx.seconds, to_onnx.peak_rss_mib, "ok")
    table.add(name, "", "interop: translator (onnx -> mlpackage)", to_coreml.cpu_seconds, to_coreml.seconds,
              to_coreml.peak_rss_mib, f"check {verdict}")
    table.add(name, "", "interop: both hops", to_onnx.cpu_seconds + to_coreml.cpu_seconds,
              to_onnx.seconds + to_coreml.seconds, max(to_onnx.peak_rss_mib, to_coreml.peak_rss_mib), "")
    for route, label in (("trace", "coremltools: ct.convert(torch.jit.trace)"),
                         ("export", "coremltools: ct.convert(torch.export)")):
        run = benchlib.run_measured([sys.executable, "-c", _script(_COREMLTOOLS, name),
                                     str(folder / f"{name}-ct-{route}.mlpackage"), route])
        result = _coremltools_result(run)
        if "error" in result:
            errors.append(f"{name}, {label}: {result['error']}")
            table.add(name, "", label, "-", "-", run.peak_rss_mib, f"FAILED (error {len(errors)})")
        else:
            table.add(name, "", label, result["cpu_seconds"], "-", run.peak_rss_mib, "ok")


def _right_padded_inputs(path: Path, name: str) -> Path:
    """Two 64-token prompts, the second padded on the right after 40 tokens (torch.onnx's causal
    mask is wrong for left padding, so a random 0/1 mask would fail the check for its sake)."""
    import numpy as np

    vocabulary = int(MODELS[name][2]["vocab_size"]) if not os.environ.get("BENCH_TRANSFORMERS_SMOKE") \
        else SMOKE["vocab_size"]
    ids = np.random.default_rng(0).integers(0, vocabulary, (2, 64)).astype(np.int64)
    mask = np.ones((2, 64), np.int64)
    mask[1, 40:] = 0
    np.savez(path, input_ids=ids, attention_mask=mask)
    return path


def _weight_count(onnx_path: Path) -> int:
    """Elements of the ONNX model's initializers (read without their external data)."""
    import math

    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    return sum(math.prod(t.dims) for t in model.graph.initializer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="bert,llama", help="comma-separated: " + ", ".join(MODELS))
    parser.add_argument("--keep", type=Path, help="write the models into this folder and keep them")
    parser.add_argument("--smoke", action="store_true", help="tiny configs: try the script, measure nothing")
    args = parser.parse_args()
    if args.smoke:
        os.environ["BENCH_TRANSFORMERS_SMOKE"] = "1"
    benchlib.quiet_libraries()
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")

    table = benchlib.Table(
        f"transformers to Core ML, dynamic batch 1..{MAX_BATCH} and sequence 2..{MAX_SEQUENCE} "
        f"(random weights; {benchlib.machine_load()})",
        ["model", "weights", "converter", "CPU s", "wall s", "peak RSS MiB", "result"])
    errors: list[str] = []
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-transformers-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        for name in names:
            bench_model(name, folder, table, errors)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    table.note("coremltools rows: CPU seconds of tracing/exporting plus ct.convert, measured inside its child; "
               "its peak RSS includes building the model")
    table.note("interop rows: each hop a child process (imports included), as `interop convert` runs")
    for index, error in enumerate(errors, 1):
        table.note(f"error {index}: {error}")
    table.print()


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
