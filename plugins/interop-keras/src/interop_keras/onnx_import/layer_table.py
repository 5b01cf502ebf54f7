"""Converters from ONNX nodes to Keras layers, one function per (op type, since_version).

A converter declares the schema versions it implements: ``@converter("Conv",
versions=(1, 11, 22))``. For a node in a model of opset N, the schema that
applies is the one ``onnx.defs.get_schema(op_type, N)`` returns, and the node
converts only when a converter declared that schema's ``since_version``; an
operator version nobody has checked is reported as unsupported rather than
guessed at (onnx2torch's rule).

This module is a leaf: the converters register themselves when their modules are
imported, and the :mod:`.ops` package imports them all, so the complete table is
``ops.layer_converter_for`` / ``ops.registered`` (what the builder uses).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import onnx

ConverterFn = Callable[[Any], None]

_CONVERTERS: dict[tuple[str, int], ConverterFn] = {}


def converter(op_types: str | tuple[str, ...], versions: tuple[int, ...]) -> Callable[[ConverterFn], ConverterFn]:
    """Register ``fn(ctx)`` for each op type at each of the schema ``versions``."""
    names = (op_types,) if isinstance(op_types, str) else op_types

    def decorate(fn: ConverterFn) -> ConverterFn:
        for name in names:
            for version in versions:
                if (name, version) in _CONVERTERS:
                    raise ValueError(f"converter for {name} version {version} registered twice")
                _CONVERTERS[(name, version)] = fn
        return fn

    return decorate


def schema_version(op_type: str, domain: str, opset: int) -> int | None:
    """The since_version of the schema ``op_type`` has in ``opset``, or None when ONNX has none."""
    try:
        return int(onnx.defs.get_schema(op_type, opset, domain).since_version)
    except Exception:  # noqa: BLE001 - onnx raises SchemaError (not exported everywhere)
        return None


def layer_converter_for(op_type: str, domain: str, opset: int) -> ConverterFn | None:
    """The converter for ``op_type`` in a model of ``opset``, or None."""
    if domain not in ("", "ai.onnx"):
        return None
    since = schema_version(op_type, "", opset)
    return None if since is None else _CONVERTERS.get((op_type, since))


def registered() -> dict[str, list[int]]:
    """Op types with the schema versions that have a converter."""
    table: dict[str, list[int]] = {}
    for name, version in sorted(_CONVERTERS):
        table.setdefault(name, []).append(version)
    return table

