"""Keras -> ONNX with tf2onnx; the batch dimension stays dynamic and I/O names are kept.

A Keras model goes through ``tf2onnx.convert.from_keras`` (which folds constants
the model captures, such as a Normalization layer's statistics); a SavedModel
directory goes through its ``serving_default`` signature the way tf2onnx's own
``--saved-model`` command does.

A bias that is all zeros (every Keras layer's before training: a design saved with
``interop train --epochs 0``) would vanish: TensorFlow's grappler, which tf2onnx runs,
folds ``x + 0`` into ``x``, and the ONNX graph, and every model imported from it, would
have no bias to train. The converter stores such biases as the smallest positive
normal float32 (1.2e-38; TensorFlow flushes subnormals to 0 while freezing) in its own
copy of the model, so the bias stays an ``Add`` with a weight, and then writes exact
zeros back into those initializers of the ONNX graph: the file holds the model's own
values and the design keeps its parameters.

Keras 3 runs a few ops in a ``tf.function(jit_compile=True)`` because TensorFlow's CPU
kernels lack them (grouped convolutions, such as ConvNeXt's depthwise ones, and
channels-first 3-D convolutions). Grappler does not inline a function marked for XLA, so
tf2onnx met a ``StatefulPartitionedCall`` it cannot convert (an open tf2onnx issue). The
converter removes the XLA marks from the frozen graph before grappler runs
(:func:`xla_functions_inlined`): the functions are inlined like any other, and tf2onnx
converts the ops inside them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from interop.plugin_api import ModelLoadError
from interop_keras.loading import load_inference_function, load_keras_model, model_structure
from interop_keras.safety import check_keras_file, check_saved_model


def _keep_zero_biases(model: Any) -> bool:
    """Store all-zero float32 biases as the smallest normal float32, so grappler cannot fold them away.

    Returns whether the placeholders can be told apart from the model's own values afterwards
    (no weight of the model is already all 1.2e-38), i.e. whether ``_restore_zero_biases`` may run.
    """
    import numpy as np

    tiny = np.finfo(np.float32).tiny
    distinct = not any(
        np.asarray(w).size and np.all(np.asarray(w) == tiny) for w in model.weights
        if str(w.dtype).endswith("float32"))
    for variable in model.trainable_weights:
        if variable.path.rsplit("/", 1)[-1] != "bias" or not str(variable.dtype).endswith("float32"):
            continue
        value = np.asarray(variable)
        if value.size and not np.any(value):
            variable.assign(np.full(value.shape, tiny, dtype=value.dtype))
    return distinct


def _restore_zero_biases(model_proto: Any) -> int:
    """Write exact zeros back into the initializers ``_keep_zero_biases`` filled with 1.2e-38."""
    import numpy as np
    from onnx import TensorProto, numpy_helper

    tiny = np.finfo(np.float32).tiny
    restored = 0
    for index, init in enumerate(model_proto.graph.initializer):
        if init.data_type != TensorProto.FLOAT:
            continue
        value = numpy_helper.to_array(init)
        if value.size and np.all(value == tiny):
            model_proto.graph.initializer[index].CopyFrom(
                numpy_helper.from_array(np.zeros_like(value), init.name))
            restored += 1
    return restored


def _erfc_as_one_minus_erf(ctx: Any, node: Any, name: str, args: list[Any]) -> None:
    """TensorFlow's Erfc (Keras' exact GELU, ``0.5·x·erfc(-x/√2)``), which ONNX lacks, as 1 − Erf(x).

    1 − erf(x) keeps erfc's absolute accuracy (float32's spacing just below 1, 6e-8), not its
    relative accuracy: for x above about 3.9 it is 0 where erfc(x) is below 4e-8. In GELU that
    is an absolute error under 1e-7 at inputs below -5.5.
    """
    import numpy as np
    from tf2onnx import utils

    dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
    node.type = "Erf"
    node.domain = ""
    one = ctx.make_const(utils.make_name(f"{name}_one"), np.array(1, dtype=dtype))
    complement = ctx.insert_new_node_on_output("Sub", node.output[0], name=utils.make_name(f"{name}_complement"))
    ctx.replace_inputs(complement, [one.output[0], node.output[0]])
    ctx.copy_shape(node.output[0], complement.output[0])
    ctx.set_dtype(complement.output[0], ctx.get_dtype(node.output[0]))


#: TensorFlow ops tf2onnx 1.16 leaves unconverted, written as standard ONNX ops (tf2onnx's custom handlers).
CUSTOM_OP_HANDLERS = {"Erfc": (_erfc_as_one_minus_erf, [])}


def keras_to_onnx(src: Path, dst: Path, options: Mapping[str, Any]) -> None:
    if not src.is_dir():
        check_keras_file(src)  # before TensorFlow is even imported: a refusal is quick
    import onnx
    import tensorflow as tf
    import tf2onnx

    opset = int(options.get("opset") or 17)
    with xla_functions_inlined():
        model_proto = _to_onnx(src, opset, tf, tf2onnx)
    onnx.checker.check_model(model_proto)
    onnx.save(model_proto, str(dst))


#: The attributes that keep grappler from inlining a function (tf.function(jit_compile=True) sets them).
_XLA_MARKS = ("_XlaMustCompile", "_XlaCompile", "_noinline")


@contextlib.contextmanager
def xla_functions_inlined() -> Iterator[None]:
    """tf2onnx with every function call the frozen graph marks for XLA inlined (see the module doc).

    tf2onnx freezes a model and then hands the GraphDef to ``tf_loader.tf_optimize`` (grappler,
    with its function inliner): for the duration, that step first drops the marks from the call
    nodes and from the functions of the graph's library.
    """
    from tf2onnx import tf_loader

    original = tf_loader.tf_optimize

    def optimize(input_names: Any, output_names: Any, graph_def: Any, *args: Any, **kwargs: Any) -> Any:
        calls = [n.attr for n in graph_def.node if n.op in ("PartitionedCall", "StatefulPartitionedCall")]
        for attrs in calls + [f.attr for f in graph_def.library.function]:
            for mark in _XLA_MARKS:
                if mark in attrs:
                    del attrs[mark]
        return original(input_names, output_names, graph_def, *args, **kwargs)

    tf_loader.tf_optimize = optimize
    try:
        yield
    finally:
        tf_loader.tf_optimize = original


def _to_onnx(src: Path, opset: int, tf: Any, tf2onnx: Any) -> Any:
    if src.is_dir():
        model_proto = _saved_model_to_onnx(src, opset)
    else:
        model = load_keras_model(src)
        import keras

        if isinstance(model, keras.Sequential) or isinstance(model_structure(model, "input"), dict) or isinstance(
                model_structure(model, "output"), dict):
            # Inputs/outputs keyed by names Keras cannot give its layers (an ONNX import's
            # 'gpu_0/data_0', 'input:0'): convert the function that is fed and read by those keys.
            # A Sequential loaded from a file too: tf2onnx's from_keras looks its outputs up by the
            # names of a call it never made (KeyError 'keras_tensor_2').
            inference = load_inference_function(src)
            model_proto = _function_to_onnx(inference.function, inference.input_signature, opset)
        else:
            signature = tuple(
                tf.TensorSpec([None, *t.shape[1:]], t.dtype, name=t.name.split(":")[0])
                for t in model.inputs
            )
            distinct = _keep_zero_biases(model)
            model_proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=opset,
                                                        custom_op_handlers=CUSTOM_OP_HANDLERS)
            if distinct:
                _restore_zero_biases(model_proto)
    return model_proto


def _function_to_onnx(function: Any, input_signature: tuple[Any, ...], opset: int) -> Any:
    """``tf2onnx.convert.from_function``, with the tensors the function captures frozen as constants.

    tf2onnx's ``from_function`` lists every non-resource input of the concrete function as a
    graph input, so a constant the model captures (a Normalization layer's mean and variance)
    became an extra ONNX input; ``from_keras`` leaves captures out, and so does this.
    """
    import tensorflow as tf
    from tf2onnx import tf_loader
    from tf2onnx.convert import _convert_common, tensor_names_from_structed

    concrete = function.get_concrete_function(*input_signature)
    captured = {id(internal) for _, internal in concrete.graph.captures}
    input_names = [t.name for t in concrete.inputs if id(t) not in captured and t.dtype != tf.dtypes.resource]
    output_names = [t.name for t in concrete.outputs if t.dtype != tf.dtypes.resource]
    renames = tensor_names_from_structed(concrete, input_names, output_names)
    with tf.device("/cpu:0"):
        frozen = tf_loader.from_function(concrete, input_names, output_names)
        model_proto, _ = _convert_common(
            frozen, name=concrete.name, continue_on_error=True, opset=opset, input_names=input_names,
            output_names=output_names, tensors_to_rename=renames, custom_op_handlers=CUSTOM_OP_HANDLERS,
        )
    return model_proto


def _saved_model_to_onnx(src: Path, opset: int) -> Any:
    """The path tf2onnx's own ``--saved-model`` command takes (captured constants are frozen)."""
    import tensorflow as tf
    from tf2onnx import tf_loader
    from tf2onnx.convert import _convert_common

    check_saved_model(src)
    try:
        graph_def, inputs, outputs, tables, renames = tf_loader.from_saved_model(
            str(src), None, None, tag=tf.saved_model.SERVING, signatures=["serving_default"],
            return_initialized_tables=True, return_tensors_to_rename=True,
        )
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{src}: TensorFlow cannot load this SavedModel: {first}") from exc
    with tf.device("/cpu:0"):
        model_proto, _ = _convert_common(
            graph_def, name=src.name, opset=opset, input_names=inputs, output_names=outputs,
            initialized_tables=tables, tensors_to_rename=renames, custom_op_handlers=CUSTOM_OP_HANDLERS,
        )
    return model_proto
