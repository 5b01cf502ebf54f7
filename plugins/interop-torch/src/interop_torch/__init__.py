"""interop plugin for PyTorch: torch.export programs, PyTorch<->ONNX, editable torch-source, runtimes, trainer.

Read at discovery time: imports nothing but interop's plugin API.
"""

from interop.plugin_api import Converter, Format, Option, Plugin, Runtime, Trainer

_TRAINABLE = Option(
    "trainable", "str", "auto",
    "which initializers become parameters: auto (by their consumers) or all (every float tensor of 2+ elements)",
    choices=("auto", "all"),
)

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
        Format(
            name="torch-source",
            directory_markers=("torch-source.json",),
            sniff="interop_torch.onnx_import.source:sniff",
            description="editable PyTorch source: model.py + weights.safetensors (loading it runs model.py)",
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
        Converter(
            source="onnx",
            target="torch",
            impl="interop_torch.onnx_import.export:onnx_to_torch",
            options=(_TRAINABLE,),
            requires=("torch", "onnx"),
            description="interop's importer: layers recovered, weights trainable, exported by torch.export",
        ),
        Converter(
            source="onnx",
            target="torch-source",
            impl="interop_torch.onnx_import.source:onnx_to_torch_source",
            options=(_TRAINABLE, Option("class_name", "str", None, "name of the generated nn.Module class")),
            requires=("torch", "onnx", "safetensors"),
            description="interop's importer: a model.py to edit plus weights.safetensors",
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
        Runtime(
            name="torch-source",
            formats=("torch-source",),
            load="interop_torch.onnx_import.source:load",
            requires=("torch", "safetensors"),
            engine="torch (eager CPU, torch-source model.py)",
            description="runs the folder's model.py: only code interop just wrote, or with INTEROP_TRUST_MODEL_CODE=1",
        ),
    ),
    trainers=(
        Trainer(
            framework="torch",
            format="torch",
            extension=".pt2",
            impl="interop_torch.train:train",
            requires=("torch",),
            init_formats=("onnx",),
            follows_batch_order=True,
        ),
    ),
)
