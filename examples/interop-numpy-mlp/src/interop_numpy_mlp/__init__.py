"""Example interop plugin: the tutorial's home-made framework, a NumPy MLP.

A model is a directory ``*.npmlp`` holding ``mlp.json`` (architecture, input and
output names) and ``weights.npz`` (normalisation and layer weights). The plugin
declares the format, a trainer for the reference MLP (plain NumPy SGD), a
converter to ONNX and a NumPy runtime. This module is what interop reads at
discovery: it imports nothing but the plugin API.
"""

from interop.plugin_api import Converter, Format, Option, Plugin, Runtime, Trainer

plugin = Plugin(
    name="numpy-mlp",
    api_version=1,
    description="home-made NumPy MLPs stored as JSON + .npz (example plugin)",
    formats=(
        Format(
            name="numpy-mlp",
            directory_suffixes=(".npmlp",),
            directory_markers=("mlp.json",),
            sniff="interop_numpy_mlp.model:sniff",
            description="directory with mlp.json and weights.npz",
        ),
    ),
    converters=(
        Converter(
            source="numpy-mlp",
            target="onnx",
            impl="interop_numpy_mlp.to_onnx:convert",
            options=(Option("opset", "int", 13, "ONNX opset to emit"),),
            requires=("onnx",),
            description="onnx.helper graph: Sub, Div, then Gemm (+ Relu) per layer",
        ),
    ),
    runtimes=(
        Runtime(
            name="numpy-mlp",
            formats=("numpy-mlp",),
            load="interop_numpy_mlp.runtime:load",
            engine="numpy-mlp (NumPy)",
        ),
    ),
    trainers=(
        Trainer(
            framework="numpy-mlp",
            format="numpy-mlp",
            extension=".npmlp",
            impl="interop_numpy_mlp.train:train",
        ),
    ),
)
