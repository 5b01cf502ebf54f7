"""Registry of ONNX op converters keyed by (domain, op_type, since_version).

Each converter is one function ``fn(ctx, node) -> None`` that reads its inputs
from the :class:`~interop_coreml.onnx2mil.context.ConversionContext` and binds its
outputs there. A model whose opset is N uses, for every op, the converter with
the largest ``since_version`` that is <= N, mirroring how ONNX itself versions
operator schemas.
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


def resolve(domain: str, op_type: str, opset: int) -> ConverterFn | None:
    """The converter for ``op_type`` under ``opset``, or None when none applies."""
    _load_op_modules()
    versions = _CONVERTERS.get((_norm_domain(domain), op_type))
    if not versions:
        return None
    chosen = None
    for since, fn in versions:
        if since <= opset:
            chosen = fn
    return chosen


def registered_ops() -> dict[str, list[int]]:
    """Default-domain op types with the since_versions that have a converter."""
    _load_op_modules()
    return {op: [v for v, _ in versions] for (dom, op), versions in sorted(_CONVERTERS.items()) if dom == ""}


def supported_opsets(op_type: str) -> list[int]:
    """ONNX opset versions (since_version values of the op's schema) we can convert."""
    _load_op_modules()
    versions = _CONVERTERS.get(("", op_type), [])
    if not versions:
        return []
    first = versions[0][0]
    schema_versions = sorted(
        {s.since_version for s in onnx.defs.get_all_schemas_with_history() if s.name == op_type and s.domain in _DEFAULT_DOMAINS}
    )
    return [v for v in schema_versions if v >= first] or [first]


_loaded = False


def _load_op_modules() -> None:
    # Importing the op-family modules runs their @register decorators.
    global _loaded
    if _loaded:
        return
    _loaded = True
    from interop_coreml.onnx2mil import ops  # noqa: F401
