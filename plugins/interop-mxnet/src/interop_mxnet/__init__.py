"""interop plugin for MXNet: Gluon exports, MXNet -> ONNX, an MXNet runtime and trainer.

MXNet 1.9.1 needs numpy < 1.24 and onnx <= 1.14, so everything here that touches
MXNet runs in a separate environment (``.venv-mxnet``, made by ``make mxnet-env``);
interop calls it as a subprocess. Read at discovery time: imports nothing but
interop's plugin API.
"""

from interop.plugin_api import Converter, Environment, Format, Plugin, Runtime, Trainer

ENV = "mxnet"

plugin = Plugin(
    name="mxnet",
    api_version=1,
    description="MXNet Gluon models exported as symbol + params (run in .venv-mxnet)",
    environments=(
        Environment(
            name=ENV,
            python=".venv-mxnet/bin/python",
            setup_hint="make mxnet-env (in the interop repository)",
            timeout=600.0,
        ),
    ),
    formats=(
        Format(
            name="mxnet",
            directory_suffixes=(".mxnet",),
            directory_markers=("model-symbol.json",),
            sniff="interop_mxnet.layout:sniff_mxnet",
            description="directory with model-symbol.json, model-0000.params and interop-io.json",
        ),
    ),
    converters=(
        Converter(
            source="mxnet",
            target="onnx",
            impl="interop_mxnet.convert:mxnet_to_onnx",
            environment=ENV,
            description="MXNet's ONNX exporter (mx.onnx.export_model), batch dimension dynamic",
        ),
    ),
    runtimes=(
        Runtime(
            name="mxnet",
            formats=("mxnet",),
            load="interop_mxnet.runtime:load",
            engine="mxnet (CPU)",
            environment=ENV,
        ),
    ),
    trainers=(
        Trainer(
            framework="mxnet",
            format="mxnet",
            extension=".mxnet",
            impl="interop_mxnet.train:train",
            environment=ENV,
        ),
    ),
)
