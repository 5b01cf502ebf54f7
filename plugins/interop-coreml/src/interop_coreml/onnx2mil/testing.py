"""Reference models for exercising the translator (tests and benchmarks).

The onnx wheel ships nine model-zoo architectures under
``onnx/backend/test/data/light/`` whose weights are ``ConstantOfShape`` fills;
:func:`zoo_model` swaps each fill for a seeded random initializer scaled like He
initialisation, so activations keep a useful range through deep stacks, and can
turn the fixed batch of 1 into a symbolic batch.
"""

from __future__ import annotations

import pathlib

import numpy as np
import onnx
from onnx import numpy_helper

ZOO_NAMES = (
    "bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50",
    "shufflenet", "squeezenet", "vgg19", "zfnet512",
)


def zoo_path(name: str) -> pathlib.Path:
    return pathlib.Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / f"light_{name}.onnx"


def _random_weight(shape: list[int], rng: np.random.Generator) -> np.ndarray:
    if len(shape) >= 2:
        fan_in = int(np.prod(shape[1:]))
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    # 1-D parameters (biases, BN scale/shift/mean/var) stay positive and near 1,
    # which keeps variances valid and activations from dying.
    return rng.uniform(0.5, 1.5, size=shape).astype(np.float32)


def zoo_model(name: str, seed: int = 0, dynamic_batch: bool = False) -> onnx.ModelProto:
    """The zoo graph ``name`` with random weights; optionally with a symbolic batch dim."""
    model = onnx.load(str(zoo_path(name)))
    rng = np.random.default_rng(seed)
    graph = model.graph
    inits = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    nodes = []
    new_inits = []
    for node in graph.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in inits:
            shape = [int(d) for d in inits[node.input[0]]]
            new_inits.append(numpy_helper.from_array(_random_weight(shape, rng), node.output[0]))
            continue
        nodes.append(node)
    used = {name for node in nodes for name in node.input}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept + new_inits)
    init_names = set(inits) | {init.name for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in init_names]
    del graph.input[:]
    graph.input.extend(inputs)
    # IR 3 requires every initializer to be a graph input; IR 4 lifted that, so say 4.
    model.ir_version = max(model.ir_version, 4)
    if dynamic_batch:
        _make_batch_dynamic(model)
    return model


def _make_batch_dynamic(model: onnx.ModelProto) -> None:
    graph = model.graph
    for value in [*graph.input, *graph.output]:
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    constants = {init.name: init for init in graph.initializer}
    for node in graph.node:
        # The zoo reshapes to [1, features]; 0 copies the batch dim instead.
        if node.op_type == "Reshape" and node.input[0] not in constants and node.input[1] in constants:
            shape = numpy_helper.to_array(constants[node.input[1]]).copy()
            if shape[0] == 1:
                shape[0] = 0
                constants[node.input[1]].CopyFrom(numpy_helper.from_array(shape, node.input[1]))
    del graph.value_info[:]
