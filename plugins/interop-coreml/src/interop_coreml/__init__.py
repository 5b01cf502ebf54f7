"""interop plugin for Core ML: the ML Program format, ONNX -> Core ML, and two runtimes.

The ``coreml`` runtime is Apple's Core ML (macOS only); ``coreml-interpreter`` is
interop's reference interpreter of saved ML Programs, which runs anywhere. Read at
discovery time: imports nothing but interop's plugin API.
"""

from interop.plugin_api import Converter, Format, Option, Plugin, Runtime

#: The options of the ONNX -> Core ML converter, declared once: `interop convert` makes its flags
#: from them and the translator (onnx2mil.driver) checks its arguments with them.
CONVERTER_OPTIONS = (
    Option("precision", "str", "fp32", "compute precision of the Core ML model", ("fp32", "fp16")),
    Option("minimum_deployment_target", "str", "iOS15", "oldest OS the model must run on",
           ("iOS15", "iOS16", "iOS17", "iOS18")),
    Option("max_dynamic_dim", "int", 1024, "upper bound given to dynamic dimensions", minimum=1),
    Option("input_shape", "str", None,
           "per-input dims, e.g. 'input_ids=1..8,1..512;attention_mask=1..8,1..512' (each dim an int or lo..hi)"),
    Option("compress", "str", "none", "compress the weights with coremltools.optimize (iOS16 or later)",
           ("none", "int8", "palettize8", "palettize4")),
)

plugin = Plugin(
    name="coreml",
    api_version=1,
    description="Core ML ML Programs (.mlpackage)",
    formats=(
        Format(
            name="coreml",
            directory_suffixes=(".mlpackage",),
            directory_markers=("Manifest.json",),
            sniff="interop_coreml.sniff:sniff_mlpackage",
            description="Core ML model package (ML Program)",
        ),
    ),
    converters=(
        Converter(
            source="onnx",
            target="coreml",
            impl="interop_coreml.converter:onnx_to_coreml",
            options=CONVERTER_OPTIONS,
            requires=("coremltools",),
            description="interop's ONNX-to-MIL translator on coremltools' MIL builder",
        ),
    ),
    runtimes=(
        Runtime(
            name="coreml",
            formats=("coreml",),
            load="interop_coreml.runtime:load_native",
            available="interop_coreml.availability:native_available",
            requires=("coremltools",),
            engine="coreml (Apple Core ML, CPU only)",
            priority=10,
        ),
        Runtime(
            name="coreml-interpreter",
            formats=("coreml",),
            load="interop_coreml.runtime:load_interpreter",
            available="interop_coreml.availability:interpreter_available",
            requires=("coremltools",),
            engine="coreml (reference interpreter)",
        ),
    ),
)
