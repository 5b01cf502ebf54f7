"""ONNX op converters keyed by (op_type, since_version), resolved through ``onnx.defs``.

A converter is one function ``fn(ctx, node) -> None`` (see :mod:`.context`) registered
for the exact schema versions whose semantics it implements, as onnx2torch does::

    @converter("Relu", 1, 6, 13, 14)
    def relu(ctx, node): ...

A model of opset N uses, for each node, the schema ``onnx.defs.get_schema(op, N)``; its
``since_version`` must be one the converter was registered for. A newer schema (an onnx
upgrade adding ``Relu`` v30) is reported as unsupported instead of being converted with
the old semantics.

This module is a leaf: it imports nothing of the importer. The converters register themselves
when their modules are imported, and the :mod:`.ops` package imports them all, so the
complete table is ``ops.module_converter_for`` / ``ops.registered`` (what the importer uses).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import onnx
import onnx.defs

ConverterFn = Callable[[Any, onnx.NodeProto], None]

DEFAULT_DOMAINS = ("", "ai.onnx")

# op_type -> {since_version: converter}
_CONVERTERS: dict[str, dict[int, ConverterFn]] = {}


def converter(op_type: str, *since_versions: int) -> Callable[[ConverterFn], ConverterFn]:
    """Register ``fn`` for ``op_type`` at each of ``since_versions`` (default-domain ops)."""
    if not since_versions:
        raise ValueError(f"converter for {op_type}: name the schema versions it implements")

    def decorate(fn: ConverterFn) -> ConverterFn:
        versions = _CONVERTERS.setdefault(op_type, {})
        for version in since_versions:
            if version in versions:
                raise ValueError(f"converter for {op_type} v{version} registered twice")
            versions[version] = fn
        return fn

    return decorate


def schema_version(op_type: str, domain: str, opset: int) -> int | None:
    """since_version of the schema ``op_type`` has at ``opset``, or None when ONNX has none."""
    try:
        return int(onnx.defs.get_schema(op_type, opset, domain).since_version)
    except onnx.defs.SchemaError:
        return None


def module_converter_for(node: onnx.NodeProto, opset: int) -> tuple[ConverterFn | None, str | None]:
    """The converter for ``node`` under the model's default-domain ``opset``, or (None, reason)."""
    if node.domain not in DEFAULT_DOMAINS:
        return None, f"domain {node.domain!r} is not the default ONNX domain"
    versions = _CONVERTERS.get(node.op_type)
    if not versions:
        return None, None
    since = schema_version(node.op_type, "", opset)
    if since is None:
        return None, f"ONNX defines no {node.op_type} at opset {opset}"
    fn = versions.get(since)
    if fn is None:
        handled = ", ".join(f"v{v}" for v in sorted(versions))
        return None, f"{node.op_type} v{since} (opset {opset}) is not handled (handled: {handled})"
    return fn, None


def registered() -> dict[str, list[int]]:
    """Op types with the schema versions that have a converter."""
    return {op: sorted(versions) for op, versions in sorted(_CONVERTERS.items())}

