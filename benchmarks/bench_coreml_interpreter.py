"""Benchmark: ResNet-50 (batch 8) in interop's Core ML reference interpreter versus onnxruntime.

The network is the ONNX zoo graph shipped with the onnx wheel
(``onnx/backend/test/data/light/light_resnet50.onnx``), whose weights are
ConstantOfShape fills; they are replaced by random weights (He-scaled for
convolutions, plausible statistics for batch norms) and the batch is set to 8.
onnxruntime runs that ONNX model; the same model is exported to an .mlpackage
with interop's ONNX -> MIL exporter (or, if the exporter cannot handle it, an
equivalent torch ResNet-50 is converted with coremltools' PyTorch frontend;
the output says which) and run by the interpreter.  Prints both times, their
ratio (goal: at most 3x) and the largest output difference.

Run: PYTHONPATH=plugins/interop-coreml/src:. python benchmarks/bench_coreml_interpreter.py
"""

from __future__ import annotations

import os
import pathlib
import statistics
import sys
import tempfile
import time

import numpy as np

BATCH = 8
REPEATS = 5


def zoo_resnet50(batch: int, seed: int = 0):
    """The light ResNet-50 zoo graph with random weights and the given batch size."""
    import onnx
    from onnx import helper, numpy_helper

    path = pathlib.Path(onnx.__file__).parent / "backend/test/data/light/light_resnet50.onnx"
    model = onnx.load(str(path))
    graph = model.graph
    rng = np.random.default_rng(seed)
    shapes = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    consumers: dict[str, tuple[str, int]] = {}
    for node in graph.node:
        for index, name in enumerate(node.input):
            consumers[name] = (node.op_type, index)

    weights = []
    for node in graph.node:
        if node.op_type != "ConstantOfShape":
            continue
        shape = tuple(int(d) for d in shapes[node.input[0]])
        op_type, index = consumers[node.output[0]]
        if op_type == "Conv" and index == 1:
            value = rng.normal(0, np.sqrt(2.0 / np.prod(shape[1:])), shape)
        elif op_type == "BatchNormalization" and index in (1, 4):  # scale, variance
            value = rng.uniform(0.5, 1.5, shape)
        elif op_type == "BatchNormalization":  # bias, mean
            value = rng.normal(0, 0.1, shape)
        elif op_type == "Gemm" and index == 1:
            # Random batch-norm statistics do not normalize, so activations reach ~1e4 at the head;
            # a small classifier keeps the logits O(1) and the softmax far from saturation,
            # which keeps the output comparison meaningful.
            value = rng.normal(0, 5e-5 / np.sqrt(shape[-1]), shape)
        else:
            value = rng.normal(0, 0.1, shape)
        weights.append(numpy_helper.from_array(value.astype(np.float32), node.output[0]))

    nodes = [node for node in graph.node if node.op_type != "ConstantOfShape"]
    data_input = graph.input[0]
    new_input = helper.make_tensor_value_info(data_input.name, onnx.TensorProto.FLOAT, [batch, 3, 224, 224])
    used = {name for node in nodes for name in node.input}
    initializers = [init for init in graph.initializer if init.name in used]
    for init in initializers:
        if init.name == "OC2_DUMMY_1":  # the flatten before the classifier hard-codes batch 1
            init.CopyFrom(numpy_helper.from_array(np.array([batch, 2048], np.int64), init.name))
    new_output = helper.make_tensor_value_info(graph.output[0].name, onnx.TensorProto.FLOAT, [batch, 1000])
    new_graph = helper.make_graph(
        nodes, "resnet50_random", [new_input], [new_output], initializer=initializers + weights
    )
    new_model = helper.make_model(new_graph, opset_imports=list(model.opset_import))
    # IR 3 wanted every initializer listed as a graph input; IR 7 lets weights be plain initializers.
    new_model.ir_version = 7
    onnx.checker.check_model(new_model)
    return new_model


def export_with_interop(model, path: pathlib.Path) -> str:
    from onnx import version_converter

    from interop_coreml.onnx2mil import save_mlpackage

    errors = []
    for candidate in (model, version_converter.convert_version(model, 13)):
        try:
            save_mlpackage(candidate, path)
            return f"interop ONNX->MIL exporter (opset {candidate.opset_import[0].version})"
        except Exception as exc:  # fall through to the next candidate, then to the torch path
            errors.append(f"{type(exc).__name__}: {exc}")
    raise RuntimeError("; ".join(errors))


def torch_resnet50_mlpackage(path: pathlib.Path, batch: int) -> str:
    """An equivalent ResNet-50 written in torch (no torchvision here), converted by coremltools."""
    import coremltools as ct
    import torch
    from torch import nn

    class Bottleneck(nn.Module):
        def __init__(self, inplanes, planes, stride):
            super().__init__()
            out = planes * 4
            self.body = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(),
                nn.Conv2d(planes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(),
                nn.Conv2d(planes, out, 1, bias=False), nn.BatchNorm2d(out),
            )
            self.shortcut = (
                nn.Sequential(nn.Conv2d(inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out))
                if stride != 1 or inplanes != out
                else nn.Identity()
            )

        def forward(self, x):
            return torch.relu(self.body(x) + self.shortcut(x))

    layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    inplanes = 64
    for planes, blocks, stride in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]:
        for i in range(blocks):
            layers.append(Bottleneck(inplanes, planes, stride if i == 0 else 1))
            inplanes = planes * 4
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2048, 1000), nn.Softmax(-1)]
    model = nn.Sequential(*layers).eval()
    example = torch.randn(batch, 3, 224, 224)
    traced = torch.jit.trace(model, example)
    mlmodel = ct.convert(traced, inputs=[ct.TensorType(name="x", shape=example.shape)], convert_to="mlprogram",
                         compute_precision=ct.precision.FLOAT32)
    mlmodel.save(str(path))
    return "equivalent torch ResNet-50 converted by coremltools' PyTorch frontend (interop's exporter failed)"


def interleaved_medians(first, second, repeats: int) -> tuple[float, float]:
    """Median wall times of two callables, timed alternately so that load from other
    processes on the machine affects both alike."""
    first()  # warm-up
    second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, bucket in ((first, times[0]), (second, times[1])):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def main() -> int:
    import onnxruntime as ort

    from interop_coreml.runtime import load_interpreter

    model = zoo_resnet50(BATCH)
    feed = np.random.default_rng(1).standard_normal((BATCH, 3, 224, 224)).astype(np.float32)
    ort_session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    input_name = ort_session.get_inputs()[0].name
    ort_out = ort_session.run(None, {input_name: feed})[0]

    with tempfile.TemporaryDirectory() as tmp:
        package = pathlib.Path(tmp) / "resnet50.mlpackage"
        same_model = True
        try:
            source = export_with_interop(model, package)
        except Exception as exc:
            print(f"interop exporter could not convert the zoo ResNet-50: {exc}", file=sys.stderr)
            source = torch_resnet50_mlpackage(package, BATCH)
            same_model = False
        session = load_interpreter(package)
        interp_feed = {session.inputs[0].name: feed}
        interp_out = next(iter(session.run(interp_feed).values()))
        ort_time, interp_time = interleaved_medians(
            lambda: ort_session.run(None, {input_name: feed}), lambda: session.run(interp_feed), REPEATS
        )

    print(f"model: ResNet-50, batch {BATCH}, float32; Core ML package from: {source}")
    print(f"onnxruntime {ort.__version__}: {ort_time * 1000:.0f} ms per batch (median of {REPEATS})")
    print(f"{session.engine}: {interp_time * 1000:.0f} ms per batch (median of {REPEATS})")
    print(f"machine load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    ratio = interp_time / ort_time
    print(f"ratio interpreter / onnxruntime: {ratio:.2f}x (goal <= 3x: {'met' if ratio <= 3 else 'NOT met'})")
    if same_model:
        print(
            f"max |interpreter - onnxruntime| on the softmax output: {np.abs(interp_out - ort_out).max():.3g} "
            f"(largest class probability per image: {', '.join(f'{p:.3f}' for p in ort_out.max(axis=1))})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
