"""Importing coremltools without the ML frameworks it treats as optional.

``import coremltools`` tries ``import tensorflow``, ``import torch``, ``import
transformers``, scikit-learn and more (``coremltools._deps``), and with
TensorFlow and PyTorch installed that import takes ~9 s and ~800 MiB instead of
~1.4 s and ~90 MiB. interop needs none of them from coremltools: the ONNX → MIL
translator uses the MIL builder, the reference interpreter the milproto loader,
and Keras/PyTorch models reach Core ML through ONNX.

So while coremltools itself is first imported, each of those frameworks that is
not already loaded is made unimportable the way Python spells "not installed"
(a ``None`` entry in ``sys.modules``: ``import`` raises ModuleNotFoundError and
``importlib.util.find_spec`` returns None), and the entries are removed right
after. coremltools then configures itself as it would on a machine without
them. Afterwards:

- a real ``import torch`` / ``import tensorflow`` (a Keras or PyTorch model in
  the same process) works as usual, and loads the framework once;
- a framework that was already imported is left alone, and coremltools sees
  and uses it as usual;
- coremltools' own TensorFlow/PyTorch frontends (``ct.convert(torch_model)``)
  stay unavailable in that process; code that needs them imports the framework
  before calling into interop's Core ML plugin.

Only the plugin's entry points (conversion, loading a model into a runtime) go
through here; importing ``interop_coreml.onnx2mil`` or ``.interpreter``
directly imports coremltools the ordinary way.
"""

from __future__ import annotations

import sys
import threading
from types import ModuleType

# Top-level modules coremltools._deps (and what it imports) tries, that interop never needs from it.
OPTIONAL_FRAMEWORKS = (
    "tensorflow",
    "tf_keras",
    "keras",
    "torch",
    "torchvision",
    "torchaudio",
    "torchao",
    "executorch",
    "transformers",
    "sklearn",
    "xgboost",
    "libsvm",
)

_lock = threading.Lock()


def import_coremltools() -> ModuleType:
    """``coremltools``, imported (the first time) with OPTIONAL_FRAMEWORKS not yet loaded kept out."""
    loaded = sys.modules.get("coremltools")
    if loaded is not None:
        return loaded
    with _lock:
        blocked = [name for name in OPTIONAL_FRAMEWORKS if name not in sys.modules]
        for name in blocked:
            sys.modules[name] = None  # type: ignore[assignment]  # "not installed", for import and find_spec
        try:
            import coremltools
        finally:
            for name in blocked:
                if name in sys.modules and sys.modules[name] is None:
                    del sys.modules[name]
    return coremltools
