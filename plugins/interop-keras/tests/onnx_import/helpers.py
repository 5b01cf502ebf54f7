"""Building small ONNX graphs, importing them, and comparing Keras with onnxruntime."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def make_model(nodes: Sequence[onnx.NodeProto], inputs: dict[str, Sequence[Any]],
               outputs: Sequence[str] | dict[str, Sequence[Any]],
               initializers: dict[str, np.ndarray] | None = None, opset: int = 17,
               input_types: dict[str, int] | None = None) -> onnx.ModelProto:
    """A model of ``nodes``; inputs as {name: shape} (str/None dims are symbolic), float32 unless typed.

    ``outputs`` are names (types from shape inference) or {name: shape} for float outputs.
    """
    types = input_types or {}
    graph = helper.make_graph(
        list(nodes), "test",
        [helper.make_tensor_value_info(n, types.get(n, TensorProto.FLOAT), list(s)) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT if isinstance(outputs, dict) else TensorProto.UNDEFINED,
                                       outputs[n] if isinstance(outputs, dict) else None) for n in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (initializers or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 10)
    model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model)
    return model


def ort_run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds)))


def keras_run(keras_model: Any, model: onnx.ModelProto, feeds: dict[str, np.ndarray],
              training: bool = False) -> dict[str, np.ndarray]:
    """Run the imported model on ONNX-named feeds; outputs by ONNX name."""
    inputs = keras_model.input
    if isinstance(inputs, dict):
        args: Any = {k: feeds[k] for k in inputs}
    else:
        names = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
        args = [feeds[n] for n in names]
        args = args[0] if len(args) == 1 else args
    result = keras_model(args, training=training)
    out_names = [o.name for o in model.graph.output]
    if isinstance(result, dict):
        return {k: np.asarray(v) for k, v in result.items()}
    if not isinstance(result, (list, tuple)):
        result = [result]
    return {n: np.asarray(v) for n, v in zip(out_names, result)}


def random_feeds(model: onnx.ModelProto, batch: int, seed: int = 0,
                 shapes: dict[str, Sequence[int]] | None = None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    initializers = {t.name for t in model.graph.initializer}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        if shapes and value.name in shapes:
            shape = list(shapes[value.name])
        else:
            dims = value.type.tensor_type.shape.dim
            shape = [d.dim_value if d.HasField("dim_value") else batch for d in dims]
        elem = value.type.tensor_type.elem_type
        if elem == TensorProto.FLOAT:
            feeds[value.name] = rng.standard_normal(shape).astype(np.float32)
        elif elem == TensorProto.BOOL:
            feeds[value.name] = rng.random(shape) < 0.5
        elif elem == TensorProto.INT32:
            feeds[value.name] = rng.integers(0, 5, shape).astype(np.int32)
        else:
            feeds[value.name] = rng.integers(0, 5, shape).astype(np.int64)
    return feeds


def assert_matches_onnxruntime(model: onnx.ModelProto, batches: Sequence[int] = (1, 3), *, rtol: float = 1e-4,
                               atol: float = 1e-5, scale_atol: bool = False) -> Any:
    """Import ``model``, run Keras and onnxruntime on random batches and compare every output.

    Returns the ImportResult. ``scale_atol`` makes atol relative to the largest
    reference magnitude (deep random networks reach large values).
    """
    from interop_keras.onnx_import import import_onnx

    result = import_onnx(model)
    for batch in batches:
        feeds = random_feeds(model, batch, seed=batch)
        expected = ort_run(model, feeds)
        actual = keras_run(result.model, model, feeds)
        assert set(actual) == set(expected), (sorted(actual), sorted(expected))
        for name, ref in expected.items():
            got = actual[name]
            assert got.shape == ref.shape, (name, got.shape, ref.shape)
            tolerance = atol * max(1.0, float(np.max(np.abs(ref)))) if scale_atol else atol
            np.testing.assert_allclose(got, ref, rtol=rtol, atol=tolerance, err_msg=f"output {name}, batch {batch}")
    return result
