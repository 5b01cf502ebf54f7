"""Calibration of `interop check`'s default verdict: faithful conversions pass, injected bugs fail.

For each network: the faithful conversions are checked with the defaults (``scaled``
error statistic, fp32 tolerances, the fp64 oracle where cheap), and so are four
injected bugs, each a copy of the faithful conversion with one fault:

* ``weight +1e-3``: one weight of the last layer (the first element of the last
  Conv/Gemm/MatMul weight) changed by 1e-3;
* ``wrong padding``: the first stride-1 convolution padded one row more at the bottom
  and one less at the top (same output shape, shifted content);
* ``transposed kernel``: the first convolution with a square kernel > 1 given its
  kernels transposed (H and W swapped);
* ``fp16 at fp32``: the Core ML copy converted with ``precision=fp16``, judged with the
  fp32 tolerances.

The faults are made in the ONNX copy (for the ONNX model zoo, the faulty ONNX is then
converted to Core ML, so the candidate is a Core ML copy with a wrong op). Each cell is
the ``margin`` (the error as a multiple of what the statistic allows; <= 1 passes) and
the verdict. ``make calibrate`` prints the whole table (docs/check.md records it);
tests/check/test_calibration.py keeps the small networks' rows in `make test`.

Run: ``python tests/check/calibration.py [--full] [--only NAME ...]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: The networks of the fast set (`make test`) and of the full table (`make calibrate`).
FAST = ("zoo:squeezenet", "torch:preact-resnet")
FULL = tuple(f"zoo:{name}" for name in (
    "bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet", "squeezenet",
    "vgg19", "zfnet512")) + ("keras:MobileNetV2", "keras:ResNet50", "keras:DenseNet121", "keras:EfficientNetB0",
                           "torch:preact-resnet", "torch:mobilenet")
BUGS = ("weight +1e-3", "wrong padding", "transposed kernel", "fp16 at fp32")
#: Image-sized inputs run in the reference interpreter: few samples keep the table affordable.
IMAGE_CHECK = {"samples": 4, "batch_sizes": "1,3"}


@dataclass
class Cell:
    """One check of the table: its margin under the default statistic and the verdict."""

    margin: float | None
    passed: bool | None
    note: str = ""
    elementwise_margin: float | None = None
    oracle: str = ""

    def text(self) -> str:
        if self.passed is None or self.margin is None:
            return self.note or "n/a"
        verdict = "pass" if self.passed else "FAIL"
        extra = [note for note in (self.note, f"oracle {self.oracle}x" if self.oracle else "") if note]
        margin = "NaN/Inf" if self.margin == float("inf") else f"{self.margin:.3g}"
        return f"{margin} {verdict}" + (f" ({', '.join(extra)})" if extra else "")


@dataclass
class Row:
    model: str
    faithful: dict[str, Cell] = field(default_factory=dict)
    bugs: dict[str, Cell] = field(default_factory=dict)
    seconds: float = 0.0


# --------------------------------------------------------------------------- faults in ONNX


def _initializers(model: Any) -> dict[str, Any]:
    return {init.name: init for init in model.graph.initializer}


def _set_initializer(model: Any, name: str, array: np.ndarray) -> None:
    from onnx import numpy_helper

    init = _initializers(model)[name]
    init.CopyFrom(numpy_helper.from_array(array.astype(numpy_helper.to_array(init).dtype), name))


def _weight_of(node: Any, model: Any) -> np.ndarray | None:
    from onnx import numpy_helper

    inits = _initializers(model)
    if len(node.input) > 1 and node.input[1] in inits:
        array = numpy_helper.to_array(inits[node.input[1]])
        return array if array.ndim >= 2 else None
    return None


def _attribute(node: Any, name: str, default: Any = None) -> Any:
    from onnx import helper

    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def _activations(model: Any, names: list[str]) -> dict[str, np.ndarray]:
    """The named values of ``model`` (onnxruntime) on one seeded random sample, as the check feeds it."""
    import onnx
    import onnxruntime as ort

    from interop.checker.inputs import random_inputs
    from interop.plugin_api import TensorSpec

    marked = onnx.ModelProto()
    marked.CopyFrom(model)
    outputs = {output.name for output in marked.graph.output}
    for name in names:
        if name not in outputs:
            marked.graph.output.append(onnx.ValueInfoProto(name=name))
    session = ort.InferenceSession(marked.SerializeToString(), providers=["CPUExecutionProvider"])
    specs = [TensorSpec(i.name, {"tensor(float)": "float32"}.get(i.type, "float32"),
                        tuple(d if isinstance(d, int) else None for d in i.shape)) for i in session.get_inputs()]
    feeds = random_inputs(specs, samples=1, batch_sizes=(1,)).arrays
    return dict(zip(names, session.run(names, feeds)))


def weight_plus_1e3(model: Any) -> str | None:
    """Add 1e-3 to one weight of the last layer: the one joining its most active input and output channels.

    (A weight reaching a channel a ReLU keeps at zero changes nothing a check could see.)
    """
    for node in reversed(model.graph.node):
        if node.op_type not in ("Conv", "Gemm", "MatMul"):
            continue
        weight = _weight_of(node, model)
        if weight is None:
            continue
        values = _activations(model, [node.input[0], node.output[0]])
        # Active channels: a ReLU after the layer keeps only the positive part of its output.
        x, y = np.abs(values[node.input[0]]), np.maximum(values[node.output[0]], 0)
        if node.op_type == "Conv":  # weight (out, in/group, kh, kw), activations (N, C, ...)
            inputs, outputs = x.mean(axis=(0, *range(2, x.ndim))), y.mean(axis=(0, *range(2, y.ndim)))
            index = (int(np.argmax(outputs)), int(np.argmax(inputs)) % weight.shape[1], 0, 0)
        else:  # MatMul weight (in, out), Gemm weight (out, in) when transB, else (in, out)
            inputs = x.reshape(-1, x.shape[-1]).mean(axis=0)
            outputs = y.reshape(-1, y.shape[-1]).mean(axis=0)
            trans_b = node.op_type == "Gemm" and _attribute(node, "transB", 0)
            index = ((int(np.argmax(outputs)), int(np.argmax(inputs))) if trans_b
                     else (int(np.argmax(inputs)), int(np.argmax(outputs))))
        weight = weight.copy()
        weight[index] += 1e-3
        _set_initializer(model, node.input[1], weight)
        return f"{node.op_type} {node.name or node.output[0]}, weight {index}"
    return None


def _conv_pads(node: Any, weight: np.ndarray) -> list[int] | None:
    """Explicit pads of a stride-1 2-D convolution (SAME auto_pad resolved), or None."""
    strides = list(_attribute(node, "strides", [1, 1]))
    if weight.ndim != 4 or any(s != 1 for s in strides):
        return None
    auto_pad = _attribute(node, "auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    dilations = list(_attribute(node, "dilations", [1, 1]))
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        totals = [(k - 1) * d for k, d in zip(weight.shape[2:], dilations)]
        small = [t // 2 for t in totals]
        begins = small if auto_pad == "SAME_UPPER" else [t - b for t, b in zip(totals, small)]
        return [*begins, *(t - b for t, b in zip(totals, begins))]
    if auto_pad == "VALID":
        return None
    return list(_attribute(node, "pads", [0, 0, 0, 0]))


def wrong_padding(model: Any, skip: int = 0) -> str | None:
    """Move one row of padding from the top to the bottom of the first stride-1 padded convolution
    (after ``skip`` such convolutions)."""
    from onnx import helper

    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        weight = _weight_of(node, model)
        pads = _conv_pads(node, weight) if weight is not None else None
        if not pads or pads[0] < 1:
            continue
        if skip:
            skip -= 1
            continue
        pads[0] -= 1
        pads[2] += 1
        kept = [a for a in node.attribute if a.name not in ("pads", "auto_pad")]
        del node.attribute[:]
        node.attribute.extend([*kept, helper.make_attribute("pads", pads)])
        return f"Conv {node.name or node.output[0]}"
    return None


def transposed_kernel(model: Any, skip: int = 0) -> str | None:
    """Swap H and W of the kernels of the first convolution whose kernel is square and larger than 1
    (after ``skip`` such convolutions)."""
    for node in model.graph.node:
        weight = _weight_of(node, model) if node.op_type == "Conv" else None
        if weight is not None and weight.ndim == 4 and weight.shape[2] == weight.shape[3] > 1:
            if skip:
                skip -= 1
                continue
            _set_initializer(model, node.input[1], np.ascontiguousarray(weight.transpose(0, 1, 3, 2)))
            return f"Conv {node.name or node.output[0]}"
    return None


def _changes_outputs(original: Any, faulty: Any) -> bool:
    """Whether ``faulty``'s outputs differ from ``original``'s by more than 1e-3 of their RMS
    (onnxruntime, one seeded sample). A smaller change is not a bug a float32 check can tell from
    rounding: faithful Core ML copies of the zoo's DenseNet-121 differ by 1e-4 of it."""
    names = [output.name for output in original.graph.output]
    before, after = _activations(original, names), _activations(faulty, names)
    for name in names:
        reference = before[name].astype(np.float64)
        change = np.abs(after[name].astype(np.float64) - reference)
        if not np.isfinite(change).all() or change.max() > 1e-3 * np.sqrt(np.mean(np.square(reference))):
            return True
    return False


def inject_effective(inject: Callable[..., str | None], model_path: Path, attempts: int = 200) -> tuple[Any, str | None]:
    """The model with the fault at the first place where it changes the outputs, and where that is.

    (A randomly initialised Keras MobileNetV2 saturates: a fault in any of its early
    convolutions changes its outputs by one float32 rounding, and up to block 13 by less
    than 1e-3 of their RMS; the next place is tried.)
    """
    import onnx

    original = onnx.load(str(model_path))
    model, where = None, None
    for skip in range(attempts):
        model = onnx.load(str(model_path))
        where = inject(model, skip)
        if where is None or _changes_outputs(original, model):
            return model, where
    return model, (where + " (no effect on the outputs)") if where else where


FAULTS: dict[str, Callable[..., str | None]] = {
    "weight +1e-3": weight_plus_1e3, "wrong padding": wrong_padding, "transposed kernel": transposed_kernel,
}


# --------------------------------------------------------------------------- networks


def _zoo(name: str, folder: Path) -> Path:
    import onnx

    from interop.testing.zoo import zoo_model

    model = zoo_model(name, seed=0, dynamic_batch=True)
    graph = model.graph
    last = graph.node[-1]
    if last.op_type == "Softmax" and last.output[0] == graph.output[0].name:
        # Random weights saturate the softmax (one-hot); the measurement is on the logits.
        graph.output[0].name = last.input[0]
        graph.node.pop()
    path = folder / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def _keras(app: str, folder: Path) -> Path:
    import keras

    from interop_keras.applications import randomize_batchnorm

    keras.utils.set_random_seed(0)
    network = getattr(keras.applications, app)(weights=None, input_shape=(96, 96, 3), include_top=False,
                                               pooling="avg")
    randomize_batchnorm(network, 0)
    path = folder / f"{app}.keras"
    network.save(str(path))
    return path


def _torch_net(kind: str) -> Any:
    import torch
    from torch import nn

    class PreAct(nn.Module):
        def __init__(self, channels: int) -> None:
            super().__init__()
            self.bn1, self.conv1 = nn.BatchNorm2d(channels), nn.Conv2d(channels, channels, 3, padding=1)
            self.bn2, self.conv2 = nn.BatchNorm2d(channels), nn.Conv2d(channels, channels, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.conv2(torch.relu(self.bn2(self.conv1(torch.relu(self.bn1(x))))))

    class ResNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(3, 16, 3, padding=1)
            self.blocks = nn.Sequential(PreAct(16), PreAct(16))
            self.down = nn.Conv2d(32, 32, 3, stride=2, padding=1)
            self.last = PreAct(32)
            self.bn, self.fc = nn.BatchNorm2d(32), nn.Linear(32, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a = self.stem(x)
            joined = torch.cat([a, self.blocks(a)], dim=1)
            return self.fc(torch.relu(self.bn(self.last(self.down(joined)))).mean((2, 3)))

    def separable(cin: int, cout: int, stride: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(cin, cin, 3, stride, 1, groups=cin), nn.BatchNorm2d(cin), nn.ReLU6(),
                             nn.Conv2d(cin, cout, 1), nn.BatchNorm2d(cout), nn.ReLU6())

    class MobileNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU6())
            self.body = nn.Sequential(separable(16, 32, 1), separable(32, 64, 2), separable(64, 64, 1))
            self.fc = nn.Linear(64, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.body(self.stem(x)).mean((2, 3)))

    torch.manual_seed(0)
    net = {"preact-resnet": ResNet, "mobilenet": MobileNet}[kind]()
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
    return net.eval()


def _torch(kind: str, folder: Path) -> Path:
    import torch

    from interop_torch.loading import save_program

    program = torch.export.export(_torch_net(kind), (torch.randn(2, 3, 32, 32),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    path = folder / f"{kind}.pt2"
    save_program(program, path, ["image"], ["logits"])
    return path


# --------------------------------------------------------------------------- the table


def _cell(report: Any) -> Cell:
    pair = report.pairs[0]
    if pair.problems:
        return Cell(None, False, note="FAIL (" + pair.problems[0][:60] + ")")
    compared = [o for o in pair.outputs if o.metrics is not None]
    margin = max((float("inf") if o.metrics.nonfinite_mismatch else o.metrics.margin for o in compared),
                 default=None)
    rescued = any(o.passed and o.message.startswith("passes against the fp64 oracle") for o in pair.outputs)
    oracle = max((o.oracle.ratio for o in pair.outputs if o.oracle is not None), default=None)
    return Cell(margin, pair.passed, note="passed by the fp64 oracle" if rescued else "",
                oracle=f"{oracle:.2g}" if oracle is not None else "")


#: With --save DIR, every check's outputs are kept there (NETWORK--CASE.npz), to study other rules offline.
SAVE: dict[str, Path | None] = {"folder": None}


def _check(reference: Path, candidate: Path, image: bool, case: str = "", **extra: Any) -> Cell:
    import interop

    options = {**(IMAGE_CHECK if image else {}), **extra}
    seen: dict[str, np.ndarray] = {}
    if SAVE["folder"] is not None:
        options["on_outputs"] = lambda info, outputs: seen.update(
            {f"{'reference' if info.path == str(reference) else 'candidate'}/{k}": v for k, v in outputs.items()})
    cell = _cell(interop.check(reference, [candidate], project_config=False, **options))
    if SAVE["folder"] is not None and seen:
        np.savez(SAVE["folder"] / f"{case or candidate.stem}.npz", **seen)
    return cell


def calibrate(network: str, folder: Path, log: Callable[[str], None] = lambda _: None,
              bugs: Sequence[str] | None = None) -> Row:
    """Every check of one network's row (``zoo:NAME``, ``keras:APP`` or ``torch:KIND``)."""
    import onnx

    import interop

    from interop.checker.tolerances import PRECISION_DEFAULTS

    fp32 = PRECISION_DEFAULTS["fp32"]
    family, name = network.split(":", 1)
    started = time.perf_counter()
    row = Row(network)
    image = True
    if family == "zoo":
        source = onnx_path = _zoo(name, folder)
    else:
        source = _keras(name, folder) if family == "keras" else _torch(name, folder)
        onnx_path = folder / f"{name}.onnx"
        interop.convert(source, onnx_path)
    log(f"{network}: converting to Core ML")
    mlpackage = folder / f"{name}.mlpackage"
    interop.convert(onnx_path, mlpackage)
    fp32_candidates = [mlpackage] if family == "zoo" else [onnx_path, mlpackage]
    for candidate in fp32_candidates:
        key = f"{source.suffix[1:]} vs {candidate.suffix[1:]}"
        cell = _check(source, candidate, image, case=f"{network}--faithful-{candidate.suffix[1:]}")
        cell.elementwise_margin = _check(source, candidate, image, error_stats="elementwise").margin
        row.faithful[key] = cell
    for bug, inject in FAULTS.items():
        if bugs is not None and bug not in bugs:
            continue
        if bug == "weight +1e-3":  # placed by activity already (the last layer's most active channels)
            model = onnx.load(str(onnx_path))
            where = inject(model)
        else:
            model, where = inject_effective(inject, onnx_path)
        if where is None:
            row.bugs[bug] = Cell(None, None, note="n/a")
            continue
        faulty = folder / f"{name}-{bug.replace(' ', '_')}.onnx"
        onnx.save(model, str(faulty))
        candidate = faulty
        if family == "zoo":  # the bug sits in a Core ML copy, made by converting the faulty ONNX
            candidate = folder / f"{name}-{bug.replace(' ', '_')}.mlpackage"
            interop.convert(faulty, candidate)
        log(f"{network}: {bug} in {where}")
        row.bugs[bug] = _check(source, candidate, image, case=f"{network}--{bug}")
    if bugs is not None and "fp16 at fp32" not in bugs:
        row.seconds = time.perf_counter() - started
        return row
    fp16 = folder / f"{name}-fp16.mlpackage"
    interop.convert(onnx_path, fp16, options={"precision": "fp16"})
    row.bugs["fp16 at fp32"] = _check(source, fp16, image, case=f"{network}--fp16", atol=fp32[0], rtol=fp32[1])
    row.seconds = time.perf_counter() - started
    return row


def markdown(rows: list[Row]) -> str:
    """The calibration table as docs/check.md shows it."""
    lines = ["| network | faithful (scaled) | faithful (elementwise) | " + " | ".join(BUGS) + " |",
             "|---|---|---|" + "---|" * len(BUGS)]
    for row in rows:
        faithful = "; ".join(f"{k}: {c.text()}" for k, c in row.faithful.items())
        elementwise = "; ".join(
            f"{k}: {c.elementwise_margin:.3g} {'pass' if c.elementwise_margin <= 1 else 'FAIL'}"
            for k, c in row.faithful.items() if c.elementwise_margin is not None)
        bugs = " | ".join(row.bugs[b].text() if b in row.bugs else "n/a" for b in BUGS)
        lines.append(f"| {row.model} | {faithful} | {elementwise} | {bugs} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="every network (about 30 minutes here)")
    parser.add_argument("--only", nargs="*", help="these networks (zoo:NAME, keras:APP, torch:KIND)")
    parser.add_argument("--bugs", nargs="*", help=f"only these injected bugs ({', '.join(BUGS)})")
    parser.add_argument("--save", type=Path, help="keep every check's outputs in this folder (.npz)")
    args = parser.parse_args(argv)
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        SAVE["folder"] = args.save
    networks = args.only or (FULL if args.full else FAST)
    rows = []
    wrong = []
    with tempfile.TemporaryDirectory(prefix="interop-calibration-") as tmp:
        for network in networks:
            folder = Path(tmp) / network.replace(":", "-")
            folder.mkdir()
            row = calibrate(network, folder, log=lambda text: print(text, file=sys.stderr, flush=True),
                            bugs=args.bugs)
            rows.append(row)
            print(markdown([row]).splitlines()[-1], f"({row.seconds:.0f} s)", file=sys.stderr, flush=True)
            wrong += [f"{network} {k} fails" for k, c in row.faithful.items() if not c.passed]
            wrong += [f"{network} {b} passes" for b, c in row.bugs.items() if c.passed]
    print(markdown(rows))
    for line in wrong:
        print(f"MISCALIBRATED: {line}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    raise SystemExit(main())
