"""Loading .pt2 programs safely, with the I/O names interop stores beside them.

interop never calls ``torch.export.load`` on a file it is given (it unpickles; see
archive.py). Instead: archive.py inspects the zip and refuses anything that could carry
code; the tensors are then built here from their raw bytes (never unpickled); and torch's
own deserializer turns the checked program JSON plus those tensors into an
ExportedProgram, with the sample inputs left unread. While torch runs, every unpickling
entry point raises, so no fallback inside torch can unpickle either.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interop.plugin_api import ModelLoadError
from interop_torch.archive import (
    EXTRA_DIR,
    SYM_OP_TARGETS,
    InspectedArchive,
    Payload,
    inspect_archive,
    refuse,
)

#: Extra file inside the .pt2 archive holding {"inputs": [...], "outputs": [...]}.
NAMES_FILE = "interop_io_names.json"


@dataclass
class LoadedProgram:
    program: Any  # torch.export.ExportedProgram
    input_names: list[str]
    output_names: list[str]


class UnpicklingBlocked(BaseException):
    """Raised by every unpickling entry point while a program loads.

    A BaseException, so that torch's own ``except Exception`` fallbacks (retrying with
    ``weights_only=False``) cannot swallow it.
    """


@contextmanager
def no_unpickling() -> Iterator[None]:
    """Make torch.load, torch's object unpickler and pickle.load(s) raise for the duration."""
    import pickle

    import torch

    def blocked(what: str):  # type: ignore[no-untyped-def]
        def refuse_call(*args: Any, **kwargs: Any) -> Any:
            raise UnpicklingBlocked(what)

        return refuse_call

    patches = [(torch, "load"), (torch.serialization, "load"), (torch._C, "_pickle_load_obj"),
               (pickle, "load"), (pickle, "loads")]
    saved = [(owner, name, getattr(owner, name)) for owner, name in patches if hasattr(owner, name)]
    for owner, name, _ in saved:
        setattr(owner, name, blocked(f"{getattr(owner, '__name__', 'torch')}.{name}"))
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


@contextmanager
def _quiet() -> Iterator[None]:
    """torch's deserializer logs warnings and FX/sympy warn; one error line is what the user gets."""
    if os.environ.get("INTEROP_DEBUG") == "1":
        yield
        return
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def _check_operators(path: Path, targets: set[str]) -> None:
    """Every node target resolves, from torch.ops only, to a registered operator (or is a sym op)."""
    import torch

    for target in sorted(targets):
        if target in SYM_OP_TARGETS:
            continue
        parts = target.split(".")[2:]
        if any(p.startswith("__") and not (i == 1 and _registered_dunder_operator(parts)) for i, p in enumerate(parts)):
            raise refuse(path, f"the program's node calls {target[:80]!r}, which is not a torch operator")
        try:
            namespace = getattr(torch.ops, parts[0])
            ok = isinstance(namespace, (torch._ops._OpNamespace, torch._ops._HigherOrderNamespace))
            op = getattr(namespace, parts[1]) if ok else None
            ok = ok and isinstance(op, (torch._ops.OpOverloadPacket, torch._ops.HigherOrderOperator))
            if ok and len(parts) == 3:
                op = getattr(op, parts[2])
                ok = isinstance(op, torch._ops.OpOverload)
        except Exception:  # an unknown op: torch raises AttributeError or RuntimeError
            ok = False
        if not ok:
            raise ModelLoadError(
                f"{path}: the program calls {target[:80]!r}, which is not an operator this torch "
                f"({torch.__version__}) knows",
                hint="a custom operator's library must be registered; interop loads none",
            )


def _registered_dunder_operator(parts: list[str]) -> bool:
    """aten names some operators like Python's operator methods (``aten::__and__``, ``__rshift__``);
    such a name is accepted only when the operator registry (asked directly, no attribute walk)
    holds schemas for it."""
    import torch

    if len(parts) < 2:
        return False
    try:
        return bool(torch._C._jit_get_schemas_for_operator(f"{parts[0]}::{parts[1]}"))
    except Exception:  # noqa: BLE001 - an odd name is simply not an operator
        return False


def build_tensors(archive: InspectedArchive, payloads: list[Payload]) -> dict[str, Any]:
    """Tensors from raw little-endian bytes (sizes already checked); entries naming one record share it."""
    import torch
    from torch._export.serde.schema import ScalarType
    from torch._export.serde.serialize import _SERIALIZE_TO_TORCH_DTYPE

    bases: dict[str, Any] = {}
    tensors: dict[str, Any] = {}
    for payload in payloads:
        dtype = _SERIALIZE_TO_TORCH_DTYPE[ScalarType(payload.dtype_code)]
        base = bases.get(payload.record)
        if base is None:
            base = torch.empty(payload.elements, dtype=dtype)
            if payload.elements:
                raw = bytearray(archive.read(payload.record))
                base.view(torch.uint8).copy_(torch.frombuffer(raw, dtype=torch.uint8))
            if payload.requires_grad:
                base.requires_grad_(True)
            bases[payload.record] = base
        elif base.dtype != dtype:
            raise ModelLoadError(f"{archive.path}: {payload.record} is read as both {base.dtype} and {dtype}")
        tensor = torch.as_strided(base, payload.sizes, payload.strides, payload.storage_offset)
        if payload.is_param:
            tensor = torch.nn.Parameter(tensor, requires_grad=payload.requires_grad)
        tensors[payload.fqn] = tensor
    return tensors


def _deserialize(archive: InspectedArchive) -> Any:
    from torch._export.serde import schema
    from torch._export.serde.serialize import ExportedProgramDeserializer, _dict_to_dataclass

    document = dict(archive.program)
    # Guards are Python source that ExportedProgram.module() would exec. Without sample inputs
    # torch generates none, and the input checks from range_constraints still apply.
    document["guards_code"] = []
    serialized = _dict_to_dataclass(schema.ExportedProgram, document)
    state_dict = build_tensors(archive, archive.weights)
    constants = build_tensors(archive, archive.constants)
    return ExportedProgramDeserializer().deserialize(serialized, state_dict, constants, None)


def _names(archive: InspectedArchive, n_in: int, n_out: int) -> dict[str, list[str]]:
    info = archive.infos.get(EXTRA_DIR + NAMES_FILE)
    if info is None:
        return {}
    try:
        names = json.loads(archive.read(EXTRA_DIR + NAMES_FILE).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ModelLoadError(f"{archive.path}: {EXTRA_DIR}{NAMES_FILE} is not valid JSON") from None
    if not isinstance(names, dict):
        raise ModelLoadError(f"{archive.path}: {EXTRA_DIR}{NAMES_FILE} is not a JSON object")
    for key, count in (("inputs", n_in), ("outputs", n_out)):
        value = names.get(key)
        if value is not None and not (isinstance(value, list) and len(value) == count
                                      and all(isinstance(v, str) and v for v in value)):
            raise ModelLoadError(f"{archive.path}: {EXTRA_DIR}{NAMES_FILE}: {key!r} is not {count} names")
    return names


def load_program(path: Path) -> LoadedProgram:
    """The checked program (see the module docstring) plus the I/O names interop stored."""
    path = Path(path)
    archive = inspect_archive(path)
    _check_operators(path, archive.targets)
    try:
        with _quiet(), no_unpickling():
            program = _deserialize(archive)
    except ModelLoadError:
        raise
    except UnpicklingBlocked as exc:
        raise refuse(path, f"loading it tried to unpickle data ({exc}), which could run code") from None
    except (Exception, RecursionError, MemoryError) as exc:
        text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{path}: torch cannot load this program: {text}") from exc
    user_inputs = list(program.graph_signature.user_inputs)
    n_out = len(program.graph_signature.user_outputs)
    names = _names(archive, len(user_inputs), n_out)
    inputs = names.get("inputs") or [str(n) for n in user_inputs]
    outputs = (names.get("outputs") or _dict_output_names(program, n_out)
               or [f"output_{i}" if n_out > 1 else "output" for i in range(n_out)])
    return LoadedProgram(program, inputs, outputs)


def _dict_output_names(program: Any, n_out: int) -> list[str] | None:
    """The keys of the flat dict a module returns (``{"logits": ..., "probs": ...}``), in output order."""
    spec = getattr(getattr(program, "call_spec", None), "out_spec", None)
    if spec is None or spec.type is not dict:
        return None
    keys = list(spec.context)
    if len(keys) != n_out or len(set(keys)) != n_out or not all(isinstance(k, str) and k for k in keys):
        return None
    if not all(child.is_leaf() for child in spec.children()):
        return None
    return keys


def save_program(program: Any, dst: Path, input_names: list[str], output_names: list[str],
                 extra: dict[str, str] | None = None) -> None:
    """torch.export.save plus the names (and any ``extra`` text files), so the file also opens in torch.

    torch also writes pickled sample inputs (a tuple of plain tensors); interop's loader never
    reads them, it only checks they name nothing but tensors. The saved archive is inspected
    as any other would be, so interop never writes a file it would refuse to open.
    """
    import torch

    files = {NAMES_FILE: json.dumps({"inputs": input_names, "outputs": output_names}), **(extra or {})}
    torch.export.save(program, str(dst), extra_files=files)
    try:
        inspect_archive(Path(dst))
    except ModelLoadError as exc:
        raise RuntimeError(f"torch.export.save wrote an archive interop's loader refuses: {exc}") from exc


def example_inputs(program: Any) -> tuple[Any, ...]:
    """Concrete tensors matching the program's user inputs (dynamic dims at their hint)."""
    import torch

    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    tensors = []
    for name in program.graph_signature.user_inputs:
        fake = placeholders[name].meta["val"]
        shape = [int(s) if not isinstance(s, torch.SymInt) else max(2, int(s.node.hint or 2)) for s in fake.shape]
        tensors.append(torch.zeros(shape, dtype=fake.dtype))
    return tuple(tensors)
