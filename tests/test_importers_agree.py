"""The Keras and PyTorch imports of one ONNX design train alike: one SGD step on the same batch from the
same weights gives the same updated weights (issue 11, "Done when"), compared by ONNX initializer name."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

pytest.importorskip("torch")
pytest.importorskip("keras")

LR = 0.1


def _cnn() -> onnx.ModelProto:
    """Conv -> BatchNormalization -> Relu -> global pooling -> Flatten -> Gemm: the layers both recover."""
    rng = np.random.default_rng(0)
    inits = {
        "conv.weight": rng.standard_normal((4, 3, 3, 3)) * 0.3, "conv.bias": rng.standard_normal(4) * 0.1,
        "bn.weight": rng.uniform(0.5, 1.5, 4), "bn.bias": rng.uniform(-0.5, 0.5, 4),
        "bn.running_mean": rng.uniform(-0.5, 0.5, 4), "bn.running_var": rng.uniform(0.5, 1.5, 4),
        "fc.weight": rng.standard_normal((3, 4)) * 0.5, "fc.bias": rng.standard_normal(3) * 0.1,
    }
    nodes = [
        helper.make_node("Conv", ["x", "conv.weight", "conv.bias"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"],
                         ["b"], epsilon=1e-5, momentum=0.9),
        helper.make_node("Relu", ["b"], ["r"]), helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["y"], transB=1),
    ]
    graph = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
                              [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _mlp(tmp_path) -> onnx.ModelProto:
    import interop

    interop.train("torch", tmp_path / "iris.pt2", epochs=1)
    interop.convert(tmp_path / "iris.pt2", tmp_path / "iris.onnx")
    return onnx.load(str(tmp_path / "iris.onnx"))


def _keras_step(model: onnx.ModelProto, x: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    import keras
    import tensorflow as tf

    from interop_keras.onnx_import import import_onnx

    imported = import_onnx(model)
    network = imported.model
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(network(x, training=True) - target))
    grads = tape.gradient(loss, network.trainable_weights)
    keras.optimizers.SGD(learning_rate=LR).apply_gradients(zip(grads, network.trainable_weights))
    return imported.onnx_weights(role="weight")


def _torch_step(model: onnx.ModelProto, x: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    import torch

    from interop_torch.onnx_import import import_onnx

    imported = import_onnx(model)
    module = imported.module.train()
    optimizer = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=LR)
    loss = ((module(torch.from_numpy(x)) - torch.from_numpy(target)) ** 2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    state = dict(module.named_parameters())
    updated = {}
    for key, source in imported.parameter_sources.items():
        if source["kind"] == "parameter" and not source.get("transform"):
            updated[source["onnx"]] = state[key].detach().numpy()
    return updated


@pytest.mark.parametrize("design", ["cnn", "mlp"])
def test_one_sgd_step_updates_the_same_weights_in_keras_and_torch(design, tmp_path):
    model = _cnn() if design == "cnn" else _mlp(tmp_path)
    rng = np.random.default_rng(1)
    shape = (8, 3, 6, 6) if design == "cnn" else (10, 2)
    x = (rng.standard_normal(shape) if design == "cnn" else rng.uniform(1, 7, shape)).astype(np.float32)
    target = rng.standard_normal((shape[0], 3)).astype(np.float32)
    initial = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    keras_weights = _keras_step(model, x, target)
    torch_weights = _torch_step(model, x, target)
    assert set(torch_weights) == set(keras_weights)
    for name, value in keras_weights.items():
        assert not np.array_equal(value, initial[name]), f"{name} did not move"
        np.testing.assert_allclose(value, torch_weights[name], rtol=1e-5, atol=1e-7, err_msg=name)
