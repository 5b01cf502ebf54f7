"""Registry of ONNX op converters keyed by (domain, op_type, since_version).

Each converter is one function ``fn(ctx, node) -> None`` that reads its inputs
from the :class:`~interop_coreml.onnx2mil.context.ConversionContext` and binds its
outputs there. A model whose opset is N uses, for every op, the converter with
the largest ``since_version`` that is <= N. A converter handles every schema version
of its op from its ``since_version`` up to :data:`VERIFIED_OPSET` (differences between
those versions are branches on ``ctx.opset`` inside it); an op whose schema changed
after that opset has no converter until someone reads the new definition and raises
the number, so the translator fails closed instead of applying older semantics.

This module is a leaf: the op families (``ops/``) import it to register, and the
package imports the families (through the driver) before anything resolves.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Any

import onnx

ConverterFn = Callable[[Any, onnx.NodeProto], None]

# (domain, op_type) -> sorted list of (since_version, converter)
_CONVERTERS: dict[tuple[str, str], list[tuple[int, ConverterFn]]] = {}

_DEFAULT_DOMAINS = ("", "ai.onnx")

#: The newest ONNX opset whose operator schemas the converters were checked against
#: (docs/coreml-op-coverage.md is generated at it). Raise it after reading what changed.
VERIFIED_OPSET = 28


def _norm_domain(domain: str) -> str:
    return "" if domain in _DEFAULT_DOMAINS else domain


def register(op_types: str | tuple[str, ...], since_version: int = 1, domain: str = "") -> Callable[[ConverterFn], ConverterFn]:
    """Decorator registering ``fn`` for one or several op types from ``since_version`` on."""
    names = (op_types,) if isinstance(op_types, str) else op_types

    def decorate(fn: ConverterFn) -> ConverterFn:
        for op_type in names:
            versions = _CONVERTERS.setdefault((_norm_domain(domain), op_type), [])
            if any(v == since_version for v, _ in versions):
                raise ValueError(f"converter for {op_type} v{since_version} registered twice")
            bisect.insort(versions, (since_version, fn), key=lambda item: item[0])
        return fn

    return decorate


def schema_version(domain: str, op_type: str, opset: int) -> int | None:
    """The ``since_version`` of the op's ONNX schema in force at ``opset`` (None: onnx does not know it)."""
    try:
        return onnx.defs.get_schema(op_type, opset, _norm_domain(domain)).since_version
    except onnx.defs.SchemaError:
        return None


def unverified_schema(domain: str, op_type: str, opset: int) -> int | None:
    """The op's schema version at ``opset`` when it is newer than :data:`VERIFIED_OPSET`, else None."""
    if _norm_domain(domain) != "":
        return None
    since = schema_version(domain, op_type, opset)
    return since if since is not None and since > VERIFIED_OPSET else None


def converter_for(domain: str, op_type: str, opset: int) -> ConverterFn | None:
    """The converter for ``op_type`` under ``opset``, or None when none applies (or its schema is unverified)."""
    versions = _CONVERTERS.get((_norm_domain(domain), op_type))
    if not versions or unverified_schema(domain, op_type, opset) is not None:
        return None
    chosen = None
    for since, fn in versions:
        if since <= opset:
            chosen = fn
    return chosen


def registered_ops() -> dict[str, list[int]]:
    """Default-domain op types with the since_versions that have a converter."""
    return {op: [v for v, _ in versions] for (dom, op), versions in sorted(_CONVERTERS.items()) if dom == ""}


def supported_opsets(op_type: str) -> list[int]:
    """The schema versions of the op (their since_version) a converter handles: from its first to VERIFIED_OPSET."""
    versions = _CONVERTERS.get(("", op_type), [])
    if not versions:
        return []
    first = versions[0][0]
    schema_versions = sorted(
        {s.since_version for s in onnx.defs.get_all_schemas_with_history() if s.name == op_type and s.domain in _DEFAULT_DOMAINS}
    )
    return [v for v in schema_versions if first <= v <= VERIFIED_OPSET] or [first]
