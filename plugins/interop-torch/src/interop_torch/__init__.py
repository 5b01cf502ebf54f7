"""interop plugin for PyTorch: torch.export programs, PyTorch->ONNX, a runtime and the trainer.

Read at discovery time: imports nothing but interop's plugin API.
"""

from interop.plugin_api import Converter, Format, Option, Plugin, Runtime, Trainer

plugin = Plugin(
    name="torch",
    api_version=1,
    description="PyTorch models saved with torch.export (.pt2)",
    formats=(
        Format(
            name="torch",
            extensions=(".pt2",),
            sniff="interop_torch.sniff:sniff_pt2",
            description="torch.export ExportedProgram archive",
        ),
    ),
    converters=(
        Converter(
            source="torch",
            target="onnx",
            impl="interop_torch.convert:torch_to_onnx",
            options=(Option("opset", "int", 18, "ONNX opset to emit"),),
            requires=("torch", "onnxscript"),
            description="torch.onnx's torch.export-based exporter; dynamic dims stay dynamic",
        ),
    ),
    runtimes=(
        Runtime(
            name="torch",
            formats=("torch",),
            load="interop_torch.runtime:load",
            requires=("torch",),
            engine="torch (eager CPU)",
        ),
    ),
    trainers=(
        Trainer(
            framework="torch",
            format="torch",
            extension=".pt2",
            impl="interop_torch.train:train",
            requires=("torch",),
        ),
    ),
)
