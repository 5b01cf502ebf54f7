"""The demo's line-up, a data table: which frameworks it trains, which formats it copies to, and their labels.

This is one of the core's two data tables that may name frameworks (the other is
``interop/builtin_plugins.py``; docs/architecture.md, "The core knows no framework").
The demo retells the README's tutorial, whose cast is fixed here by name; every name is
looked up in the installed plugins' declarations, never imported, and a framework whose
plugin is missing or cannot run here is left out (optional) or named in the error (required).
Names the table does not label are shown as they are.
"""

from __future__ import annotations

#: Frameworks the demo always trains, then those it adds when their plugin can run here.
REQUIRED_FRAMEWORKS = ("keras", "torch")
OPTIONAL_FRAMEWORKS = ("mxnet",)
#: Every source is copied to these formats, in this order: each copy after the first is made
#: from the first (ONNX, the hub). File suffixes come from the formats' declarations.
COPY_FORMATS = ("onnx", "coreml")
#: (design framework, training framework) of the row trained from another framework's design.
DESIGN_ROW = ("keras", "torch")

#: How the figures, the report and the progress lines name the frameworks and formats.
FRAMEWORK_LABELS = {"keras": "Keras", "torch": "PyTorch", "mxnet": "MXNet"}
FORMAT_LABELS = {"onnx": "ONNX", "coreml": "Core ML"}
