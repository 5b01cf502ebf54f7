"""Reference models for tests and benchmarks of every plugin: real architectures, random weights.

* :func:`zoo_model`: the nine model-zoo architectures the onnx wheel ships under
  ``onnx/backend/test/data/light/``, whose weights are ``ConstantOfShape`` fills; each
  fill becomes a seeded random initializer scaled like He initialisation (so activations
  keep a useful range through deep stacks), and the fixed batch of 1 can become symbolic.
  :func:`zoo_weight_names` names the architecture's weights and BatchNorm statistics (the fills
  and the float tensors stored as they are), independently of any importer's own classification.
* :func:`without_final_softmax`: the graph's outputs taken before a closing Softmax
  (random weights saturate it to one-hot vectors that compare equal whatever the
  network computed).
* :func:`skip_extended_unless_asked`: the ``extended`` marker's rule (long model
  campaigns run only under ``INTEROP_EXTENDED=1``, ``make test-extended``), for the
  conftest of every plugin whose tests use these models.
* :func:`onnx_weight_count`: the weight elements of any ONNX graph by the rule the
  importers document (docs/training-elsewhere.md, "What is a weight"), written here
  independently of both importers so their tests compare with something they did not compute.

Only numpy and onnx are imported. Reference models that need a framework to build are the
business of the plugin that owns it, which ships them beside its code for every plugin's tests.
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


def zoo_weight_names(name: str) -> list[str]:
    """The architecture's weight tensors (and BatchNorm statistics): the zoo file's ConstantOfShape fills,
    which :func:`zoo_model` randomises, and the float tensors it stores as they are (zero biases)."""
    model = onnx.load(str(zoo_path(name)))
    inits = {init.name: init for init in model.graph.initializer}
    fills = [node.output[0] for node in model.graph.node if node.op_type == "ConstantOfShape" and node.input[0] in inits]
    stored = [n for n, init in inits.items() if numpy_helper.to_array(init).dtype.kind == "f"]
    return fills + stored


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


def without_final_softmax(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose outputs are taken before a closing Softmax (same output names)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    graph = copy.graph
    for output in graph.output:
        producers = [n for n in graph.node if output.name in n.output and n.op_type == "Softmax"]
        if not producers:
            continue
        softmax = producers[0]
        logits = softmax.input[0]
        graph.node.remove(softmax)
        for node in graph.node:
            node.output[:] = [output.name if o == logits else o for o in node.output]
            node.input[:] = [output.name if i == logits else i for i in node.input]
    del graph.value_info[:]
    return copy


def onnx_weight_count(model: onnx.ModelProto) -> int:
    """Elements of the float constants an ONNX import must make trainable (:mod:`interop.onnx_weights`)."""
    from interop.onnx_weights import onnx_weight_count as count

    return count(model)


def skip_extended_unless_asked(items: list) -> None:  # type: ignore[type-arg]
    """Skip the pytest items marked ``extended`` unless INTEROP_EXTENDED=1 (``make test-extended``)."""
    import os

    import pytest

    if os.environ.get("INTEROP_EXTENDED") == "1":
        return
    skip = pytest.mark.skip(reason="extended model campaign: run `make test-extended`")
    for item in items:
        if "extended" in item.keywords:
            item.add_marker(skip)
