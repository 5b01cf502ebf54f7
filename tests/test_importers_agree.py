"""The Keras and PyTorch imports of one ONNX design train alike: one SGD step on the same batch from the
same weights gives the same updated weights (issue 11, "Done when"), compared by ONNX initializer name.

Three designs: a small CNN of the layers both importers recover, the model zoo's ShuffleNet (random
weights; grouped convolutions, BatchNormalization on the batch's statistics, the channel shuffle's
Reshape/Transpose that the Keras import must carry through its channels-last layout) and the Iris MLP
as ``interop train`` writes it. The step size is set so that the step changes the weights visibly (a
tenth of the step that would zero the loss to first order), so the updated weights agree only if the
gradients do.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

pytest.importorskip("torch")
pytest.importorskip("keras")



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


def _shufflenet() -> onnx.ModelProto:
    """The zoo's ShuffleNet with random weights, its conv biases drawn too.

    zoo_model keeps the biases the zoo file stores, of order 1e-6; a conv bias ahead of a training-mode
    BatchNorm has a zero gradient, so its update is rounding noise that would be compared with values
    that small. Drawn at 0.1, every weight has a scale "relative" can refer to."""
    from interop.testing.zoo import without_final_softmax, zoo_model

    model = without_final_softmax(zoo_model("shufflenet", seed=0, dynamic_batch=True))
    rng = np.random.default_rng(3)
    for init in model.graph.initializer:
        value = numpy_helper.to_array(init)
        if value.dtype.kind == "f" and value.size > 1 and np.abs(value).max() < 1e-3:
            init.CopyFrom(numpy_helper.from_array(rng.uniform(-0.1, 0.1, value.shape).astype(value.dtype), init.name))
    return model


def _keras_step(model: onnx.ModelProto, x: np.ndarray, target: np.ndarray, lr: float) -> dict[str, np.ndarray]:
    import keras
    import tensorflow as tf

    from interop_keras.onnx_import import import_onnx

    imported = import_onnx(model)
    network = imported.model
    if isinstance(network.input, dict):  # ONNX names Keras cannot use as layer names ("gpu_0/data_0")
        (key,) = network.input
        x = {key: x}
    with tf.GradientTape() as tape:
        y = network(x, training=True)
        (y,) = y.values() if isinstance(y, dict) else (y,)
        loss = tf.reduce_mean(tf.square(y - target))
    grads = tape.gradient(loss, network.trainable_weights)
    keras.optimizers.SGD(learning_rate=lr).apply_gradients(zip(grads, network.trainable_weights))
    return imported.onnx_weights(role="weight")


def _torch_step(model: onnx.ModelProto, x: np.ndarray, target: np.ndarray, lr: float | None = None,
                float64: bool = False) -> tuple[dict[str, np.ndarray], float]:
    """The torch import's weights after one SGD step, by ONNX name, and the step size it took.

    The step size is a tenth of the one that would zero the loss to first order (loss / |grad|^2),
    unless ``lr`` gives it. ``float64`` takes the step in double precision (the oracle).
    """
    import torch

    from interop_torch.onnx_import import import_onnx

    imported = import_onnx(model)
    module = imported.module.train()
    cast = (lambda a: torch.from_numpy(a).double()) if float64 else torch.from_numpy
    if float64:
        module = module.double()
    params = [p for p in module.parameters() if p.requires_grad]
    loss = ((module(cast(x)) - cast(target)) ** 2).mean()
    loss.backward()
    if lr is None:
        lr = 0.1 * loss.item() / sum(float((p.grad * p.grad).sum()) for p in params)
    torch.optim.SGD(params, lr=lr).step()
    state = dict(module.named_parameters())
    updated = {}
    for key, source in imported.parameter_sources.items():
        if source["kind"] == "parameter" and not source.get("transform"):
            updated[source["onnx"]] = state[key].detach().numpy().astype(np.float64)
    return updated, lr


def _design(design: str, tmp_path) -> tuple[onnx.ModelProto, np.ndarray]:  # type: ignore[no-untyped-def]
    """The ONNX design and a fixed batch for it."""
    rng = np.random.default_rng(1)
    if design == "cnn":
        return _cnn(), rng.standard_normal((8, 3, 6, 6)).astype(np.float32)
    if design == "shufflenet":
        return _shufflenet(), rng.standard_normal((2, 3, 224, 224)).astype(np.float32)
    return _mlp(tmp_path), rng.uniform(1, 7, (10, 2)).astype(np.float32)


@pytest.mark.parametrize("design", ["cnn", pytest.param("shufflenet", marks=pytest.mark.slow), "mlp"])
def test_one_sgd_step_updates_the_same_weights_in_keras_and_torch(design, tmp_path):
    model, x = _design(design, tmp_path)
    outputs = 1000 if design == "shufflenet" else 3
    target = np.random.default_rng(2).standard_normal((x.shape[0], outputs)).astype(np.float32)
    initial = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    torch_weights, lr = _torch_step(model, x, target)
    keras_weights = _keras_step(model, x, target, lr)
    assert set(torch_weights) == set(keras_weights)
    for name, value in keras_weights.items():
        # 1e-5 relative; an element near zero is compared at a millionth of its tensor's largest element.
        atol = 1e-6 * float(np.abs(torch_weights[name]).max())
        np.testing.assert_allclose(value, torch_weights[name], rtol=1e-5, atol=atol, err_msg=name)
    # The steps themselves agree, tensor by tensor, wherever a step is more than float32 rounding of its
    # weight (in ShuffleNet the classifier's gradient sets the step size and most BatchNorm steps are a few
    # ulps; a bias ahead of a training-mode BatchNorm has a zero gradient). How close two float32 gradients
    # of a deep network come depends on each library's summation order (threads, kernels chosen), so the
    # Keras step is judged against the float64 step: within 1e-3 of the step, or no further from it than
    # ten times the float32 torch step is.
    exact, _ = _torch_step(model, x, target, lr=lr, float64=True)
    compared = 0
    for name in sorted(keras_weights):
        torch_step, keras_step = torch_weights[name] - initial[name], keras_weights[name] - initial[name]
        exact_step = exact[name] - initial[name]
        size = np.linalg.norm(torch_step)
        if size > 1e-5 * np.linalg.norm(initial[name]):
            compared += 1
            keras_error = np.linalg.norm(keras_step - exact_step)
            torch_error = np.linalg.norm(torch_step - exact_step)
            assert keras_error <= max(1e-3 * size, 10 * torch_error), (name, keras_error, torch_error, size)
    # All but the CNN's conv bias (ahead of its BatchNorm); ShuffleNet: 51 of 150 on the machines tried.
    expected = {"cnn": len(keras_weights) - 1, "shufflenet": 40, "mlp": len(keras_weights)}[design]
    assert compared >= expected, (compared, len(keras_weights))
