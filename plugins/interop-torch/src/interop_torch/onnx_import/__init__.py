"""ONNX -> PyTorch: a trainable nn.Module from an ONNX graph, as a .pt2 program or as editable source.

The importer recovers layers where the graph expresses them (Gemm/MatMul+Add -> nn.Linear,
Conv -> nn.ConvNd, BatchNormalization -> nn.BatchNormNd with running statistics, ...), keeps
every weight initializer as a trainable parameter named after it, and writes the rest as
functional torch code. See docs/training-elsewhere.md.

Public functions (what ``interop train --init`` and users call):

* :func:`import_onnx` -- an :class:`ImportedModel` whose ``module`` is a real ``nn.Module``
  (train()/eval() switch BatchNorm and Dropout as usual);
* :func:`load_torch_source` -- the nn.Module of a ``torch-source`` folder; it runs that folder's
  ``model.py``, so only for folders you would run yourself (see :mod:`.source`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interop.plugin_api import ModelLoadError, TensorSpec

__all__ = ["ImportedModel", "import_onnx", "load_onnx", "load_torch_source"]


@dataclass
class ImportedModel:
    """An imported model: the module, the code that defines it, and where every weight came from."""

    module: Any  # torch.nn.Module, in train mode as a freshly built module is
    source: str  # the Python source of the module's class (what torch-source writes as model.py)
    class_name: str
    inputs: list[TensorSpec]  # ONNX names, dtypes and shapes, in forward()'s argument order
    outputs: list[TensorSpec]
    parameter_sources: dict[str, dict[str, Any]]  # state-dict key -> ONNX initializer, role, transform
    notes: list[str]  # what the import could not recover or changed (read them)
    weight_count: int  # elements of the ONNX initializers classified as weights

    @property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [spec.name for spec in self.outputs]

    @property
    def trainable_count(self) -> int:
        """Elements of the module's parameters that require gradients (equals weight_count after an import)."""
        return sum(p.numel() for p in self.module.parameters() if p.requires_grad)


def load_onnx(path: str | Path) -> Any:
    """Read an ONNX file (external data from its own folder only), as a ModelLoadError on failure."""
    import onnx

    path = Path(path)
    try:
        return onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf and external-data errors
        raise ModelLoadError(f"{path}: cannot read the ONNX model ({str(exc).splitlines()[0][:200]})") from None


def import_onnx(model: Any, trainable: str = "auto", class_name: str | None = None) -> ImportedModel:
    """Import ``model`` (a path or an ``onnx.ModelProto``) into a trainable ``nn.Module``.

    ``trainable="auto"`` makes weights what their consumers say (see :mod:`.prepare`);
    ``"all"`` also trains every other float initializer of two or more finite elements.
    Raises UnsupportedModelError (exit 3) listing every op it cannot convert.
    """
    from interop_torch.onnx_import.build import instantiate, plan_import

    if not hasattr(model, "graph"):
        model = load_onnx(model)
    plan = plan_import(model, trainable=trainable, class_name=class_name)
    module = instantiate(plan)
    return ImportedModel(module, plan.source, plan.class_name, plan.inputs, plan.outputs, plan.parameter_sources(),
                         plan.notes, plan.weight_count)


def load_torch_source(folder: str | Path, strict: bool = True) -> Any:
    """The nn.Module of a torch-source folder. This RUNS the folder's model.py: use it on folders you trust.

    ``strict=False`` loads the weights that still fit an edited model.py (by name and shape).
    """
    from interop_torch.onnx_import.source import load_module

    return load_module(Path(folder), strict=strict)
