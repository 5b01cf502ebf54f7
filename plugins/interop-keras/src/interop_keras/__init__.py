"""interop plugin for Keras: the format, Keras->ONNX (tf2onnx), ONNX->Keras, a TensorFlow runtime, the trainer.

Read at discovery time: imports nothing but interop's plugin API.
"""

from interop.plugin_api import Converter, Format, Option, Plugin, Runtime, Trainer

_NEEDS = ("tensorflow", "keras")

plugin = Plugin(
    name="keras",
    api_version=1,
    description="Keras 3 / TensorFlow models",
    formats=(
        Format(
            name="keras",
            extensions=(".keras", ".h5", ".hdf5"),
            directory_markers=("saved_model.pb",),
            sniff="interop_keras.sniff:sniff_keras",
            description="Keras archive (.keras), legacy HDF5 (.h5) or TensorFlow SavedModel directory",
        ),
    ),
    converters=(
        Converter(
            source="keras",
            target="onnx",
            impl="interop_keras.convert:keras_to_onnx",
            options=(Option("opset", "int", 17, "ONNX opset to emit"),),
            requires=(*_NEEDS, "tf2onnx"),
            description="tf2onnx on the model's inference function; batch stays dynamic",
        ),
        Converter(
            source="onnx",
            target="keras",
            impl="interop_keras.onnx_import:onnx_to_keras",
            requires=(*_NEEDS, "onnx"),
            description="native Keras layers, trainable; NCHW graphs keep their layout at the edges",
        ),
    ),
    runtimes=(
        Runtime(
            name="keras",
            formats=("keras",),
            load="interop_keras.runtime:load",
            requires=_NEEDS,
            engine="keras (TensorFlow CPU)",
        ),
    ),
    trainers=(
        Trainer(
            framework="keras",
            format="keras",
            extension=".keras",
            impl="interop_keras.train:train",
            requires=_NEEDS,
            init_formats=("onnx",),
            follows_batch_order=True,
        ),
    ),
)
