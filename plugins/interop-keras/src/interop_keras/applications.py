"""Keras Applications with random weights as ONNX graphs: reference models for every plugin's tests.

The importers' and the Core ML translator's model campaigns convert real networks
exported by tf2onnx (NHWC transposes, tf2onnx's shape arithmetic, names like
``Identity:0``). Building them needs TensorFlow, Keras and tf2onnx, so they live here,
in the plugin that owns the framework, not in the core's framework-free zoo
(:mod:`interop.testing.zoo`). Every function imports the framework when called, never at
import.

* :func:`keras_application_onnx`: ``keras.applications.<app>`` (``weights=None``, BatchNorm
  statistics randomised) frozen and converted with tf2onnx, as tf2onnx's CLI does; cached per
  process, so the test files of several plugins convert each network once.
* :func:`frozen_to_onnx`: any Keras model frozen and converted that way (batch dynamic).
* :func:`randomize_batchnorm`: trained-looking BatchNorm statistics for a model built with
  ``weights=None``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from interop_keras.convert import CUSTOM_OP_HANDLERS, xla_functions_inlined

#: The Keras Applications the campaigns convert through tf2onnx (small inputs keep them fast).
KERAS_APPS = ("MobileNetV2", "ResNet50", "DenseNet121", "EfficientNetB0")


def keras_application_onnx(app: str, input_shape: tuple[int, ...] = (32, 32, 3), include_top: bool = False,
                           classes: int = 10, opset: int = 17, seed: int = 0) -> Any:
    """``keras.applications.<app>`` with random weights, frozen and converted by tf2onnx (cached).

    ``include_top=False`` adds global average pooling: an untrained classifier head outputs a
    near-uniform softmax that would compare equal whatever the body computed. The graph
    structure (ops, shape arithmetic, names like ``Identity:0``) is the one of full-size inputs.
    A copy (an ``onnx.ModelProto``) is returned, so callers may edit it.
    """
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(_keras_application_onnx(app, tuple(input_shape), include_top, classes, opset, seed))
    return model


@functools.lru_cache(maxsize=None)
def _keras_application_onnx(app: str, input_shape: tuple[int, ...], include_top: bool, classes: int, opset: int,
                            seed: int) -> Any:
    import keras

    keras.utils.set_random_seed(seed)
    kwargs = {"classes": classes} if include_top else {"pooling": "avg"}
    network = getattr(keras.applications, app)(weights=None, input_shape=input_shape, include_top=include_top,
                                               **kwargs)
    randomize_batchnorm(network, seed)
    return frozen_to_onnx(network, input_shape, opset)


def randomize_batchnorm(network: Any, seed: int = 0) -> None:
    """Give a Keras model's BatchNormalization layers trained-looking statistics (weights=None leaves identities)."""
    import keras

    rng = np.random.default_rng(seed)
    for layer in network.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            shapes = [w.shape for w in layer.get_weights()]
            values = [rng.uniform(0.8, 1.2, shapes[0]), rng.uniform(-0.1, 0.1, shapes[1]),
                      rng.uniform(-0.1, 0.1, shapes[2]), rng.uniform(0.8, 1.2, shapes[3])]
            layer.set_weights([v.astype(np.float32) for v in values])


def frozen_to_onnx(keras_model: Any, input_shape: tuple[int, ...], opset: int = 17) -> Any:
    """Freeze a Keras model's variables and convert the graph with tf2onnx (as its CLI does); batch is dynamic."""
    import tensorflow as tf
    import tf2onnx
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    spec = tf.TensorSpec((None, *input_shape), tf.float32, name="input")
    concrete = tf.function(lambda x: keras_model(x, training=False)).get_concrete_function(spec)
    frozen = convert_variables_to_constants_v2(concrete)
    with xla_functions_inlined():  # ConvNeXt's grouped convolutions; Erfc (exact GELU): as `interop convert`
        model, _ = tf2onnx.convert.from_graph_def(
            frozen.graph.as_graph_def(), input_names=[t.name for t in frozen.inputs],
            output_names=[t.name for t in frozen.outputs], opset=opset, custom_op_handlers=CUSTOM_OP_HANDLERS)
    return model


__all__ = ["KERAS_APPS", "keras_application_onnx", "frozen_to_onnx", "randomize_batchnorm"]
