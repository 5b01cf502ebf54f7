"""interop plugin declaring the ONNX format and the ONNX Runtime runtime.

This module is read at discovery time: it imports nothing but interop's plugin API.
"""

from interop.plugin_api import Format, Plugin, Runtime

plugin = Plugin(
    name="onnx",
    api_version=1,
    description="ONNX models (.onnx), executed with ONNX Runtime on the CPU",
    formats=(
        Format(
            name="onnx",
            extensions=(".onnx",),
            sniff="interop_onnx.sniff:sniff_onnx",
            description="ONNX protobuf model",
        ),
    ),
    runtimes=(
        Runtime(
            name="onnxruntime",
            formats=("onnx",),
            load="interop_onnx.runtime:load",
            requires=("onnxruntime",),
            engine="onnxruntime (CPUExecutionProvider)",
        ),
    ),
)
