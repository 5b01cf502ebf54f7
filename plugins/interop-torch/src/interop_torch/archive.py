"""Inspecting an untrusted .pt2 archive before anything in it is deserialised.

``torch.export.load`` unpickles in several places (sample inputs, weights and constants
stored with ``use_pickle``, custom and opaque object constants, the legacy layout's state
dict), loads AOTInductor shared libraries, passes shape expressions to ``sympy.sympify``
(an ``eval``) and resolves node targets by walking attributes from the ``torch`` module.
interop therefore never calls it on a file it is given. This module reads the zip with
the standard library, refuses every archive that holds something that could carry code,
and checks every string of the program JSON that torch would turn into code or a callable.
It imports nothing from torch, so what it refuses is refused before torch is involved.

Nothing here unpickles: pickle data is only *scanned* (its opcodes listed, never run).
"""

from __future__ import annotations

import ast
import json
import pickletools
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from interop.plugin_api import ModelLoadError

#: Upper bounds on what interop reads from an archive (declared sizes are checked first).
MAX_JSON_BYTES = 256 << 20
MAX_TOTAL_BYTES = 64 << 30
#: Deflate cannot compress better than about 1032:1; anything claiming more is a bomb.
MAX_COMPRESSION_RATIO = 1100
MAX_EXPR_CHARS = 20_000

ARCHIVE_VERSION = b"0"  # torch's pt2_archive_constants.ARCHIVE_VERSION_VALUE (torch 2.7 to 2.13)
MODEL_NAME = "model"
PROGRAM = f"models/{MODEL_NAME}.json"
WEIGHTS_DIR = "data/weights/"
CONSTANTS_DIR = "data/constants/"
SAMPLE_INPUTS_DIR = "data/sample_inputs/"
WEIGHTS_CONFIG = f"{WEIGHTS_DIR}{MODEL_NAME}_weights_config.json"
CONSTANTS_CONFIG = f"{CONSTANTS_DIR}{MODEL_NAME}_constants_config.json"
EXTRA_DIR = "extra/"
TENSOR_CONSTANT_PREFIX = "tensor_"

#: Files only the legacy (torch < 2.7) layout has; its state dict and constants are pickles.
LEGACY_FILES = ("serialized_state_dict.pt", "serialized_constants.pt", "serialized_example_inputs.pt",
                "serialized_state_dict.json", "serialized_constants.json", "serialized_exported_program.json")
#: Folders whose content torch loads as native code or hands to other runtimes.
CODE_DIRS = {"data/aotinductor/": "AOTInductor compiled native code", "data/executorch/": "ExecuTorch code",
             "data/mtia/": "MTIA compiled code"}

#: Globals a tensor-only ``torch.save`` pickle names (a subset of torch's weights-only allowlist):
#: rebuilding functions for plain tensors and parameters, storage classes and dtypes, and
#: ``_rebuild_from_type_v2`` with ``torch.Tensor`` for a tensor that carries attributes (the
#: example inputs of a program exported with ``Dim.DYNAMIC`` are marked that way). That wrapper
#: calls the rebuilding function it is given and sets the attributes it is given; both are
#: values of the same pickle, so every global they could name is checked here too.
_TENSOR_PICKLE_GLOBALS = frozenset(
    {
        "collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state", "torch.Size",
        "torch.device", "torch.storage.UntypedStorage", "torch.storage.TypedStorage", "builtins.set",
        "torch.serialization._get_layout", "torch._tensor._rebuild_from_type_v2", "torch.Tensor",
    }
)
_TENSOR_PICKLE_GLOBAL = re.compile(
    r"torch\.([A-Z][A-Za-z0-9]*Storage|u?int[0-9]+|float[0-9][A-Za-z0-9_]*|bfloat16|bool|complex[0-9]+)\Z"
)

_NAME = re.compile(r"[A-Za-z0-9_]*\Z")
_DOTTED = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*\Z")
_FQN = re.compile(r"([A-Za-z0-9_]+(@[0-9]+)?(\.[A-Za-z0-9_]+(@[0-9]+)?)*)?\Z")
#: Python treats \r as a line break in source; FX can write metadata into generated code comments.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_NEWLINE_KEYS = frozenset({"stack_trace", "as_string", "as_strings", "custom", "from_node", "in_spec", "out_spec"})
_SYMBOL = re.compile(r"[a-z]{1,4}[0-9]+\Z")
_EXPR_STRING = re.compile(r"[A-Za-z0-9_.+\-]{0,64}\Z")

#: Names a shape expression may use: sympy constructors and torch's own sympy functions.
_EXPR_NAMES = frozenset(
    {
        "Symbol", "Integer", "Float", "Rational", "Add", "Mul", "Pow", "Mod", "Max", "Min", "Abs", "floor",
        "ceiling", "sqrt", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "StrictLessThan", "StrictGreaterThan",
        "LessThan", "GreaterThan", "Equality", "Unequality", "And", "Or", "Not", "Piecewise", "ITE",
        "true", "false", "True", "False", "oo", "zoo", "nan", "S", "Half", "One", "Zero", "NegativeOne",
        "Infinity", "NegativeInfinity", "BooleanTrue", "BooleanFalse", "ExprCondPair",
        "FloorDiv", "ModularIndexing", "Where", "PythonMod", "CleanDiv", "CeilToInt", "FloorToInt", "CeilDiv",
        "LShift", "RShift", "PowByNatural", "FloatPow", "FloatTrueDiv", "IntTrueDiv",
        "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt", "RoundToInt", "RoundDecimal",
        "ToFloat", "Identity", "OpaqueUnaryFn_sqrt", "OpaqueUnaryFn_exp", "OpaqueUnaryFn_log",
    }
)
_EXPR_KEYWORDS = frozenset(
    {"positive", "negative", "nonnegative", "nonpositive", "integer", "real", "finite", "infinite", "zero",
     "nonzero", "even", "odd", "precision", "evaluate", "commutative", "extended_real", "rational"}
)
_POW_CALLS = frozenset({"Pow", "PowByNatural", "FloatPow"})
_EXPR_NODES = (ast.Expression, ast.Call, ast.Name, ast.Load, ast.Constant, ast.keyword, ast.BinOp, ast.UnaryOp,
               ast.Compare, ast.BoolOp, ast.Tuple, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod,
               ast.Pow, ast.USub, ast.UAdd, ast.Not, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE,
               ast.And, ast.Or, ast.BitAnd, ast.BitOr, ast.Invert)

#: Node targets torch serialises for symbolic-size arithmetic (torch's _SYM_OPS, by name).
SYM_OP_TARGETS = frozenset(
    {f"_operator.{op}" for op in ("eq", "ne", "le", "ge", "lt", "gt", "neg", "pos", "mul", "add", "sub",
                                  "floordiv", "mod", "pow", "truediv", "and_", "or_", "lshift", "rshift")}
    | {"math.trunc"}
    | {f"torch.{op}" for op in ("sym_not", "sym_int", "sym_float", "sym_ite", "sym_max", "sym_min", "sym_sqrt")}
)
_OP_TARGET = re.compile(r"torch\.ops\.[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?\Z")


@dataclass
class Payload:
    """One tensor of the weights or constants config, as declared (nothing read yet)."""

    fqn: str
    record: str  # archive name, e.g. data/weights/weight_0
    is_param: bool
    dtype_code: int  # torch._export.serde.schema.ScalarType
    sizes: list[int]
    strides: list[int]
    storage_offset: int
    requires_grad: bool
    elements: int  # how many dtype elements the record holds


#: Bytes per element of every ScalarType torch.export serialises (schema.ScalarType values).
ITEMSIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 2, 7: 4, 8: 8, 9: 4, 10: 8, 11: 16, 12: 1, 13: 2, 28: 2,
            29: 1, 30: 1, 31: 1, 32: 1, 33: 1, 34: 4, 35: 8}
STRIDED = 7  # schema.Layout.Strided


@dataclass
class InspectedArchive:
    """An archive that passed every check; names are relative to its root folder."""

    path: Path
    root: str
    infos: dict[str, zipfile.ZipInfo]
    program: dict[str, Any]
    weights: list[Payload]
    constants: list[Payload]
    targets: set[str]  # every operator the program's nodes name (checked against torch.ops later)

    def read(self, name: str) -> bytes:
        return read_member(self.path, self.infos[name])


def refuse(path: Path, why: str, hint: str | None = None) -> ModelLoadError:
    return ModelLoadError(f"{path}: refused: {why}", hint=hint)


def read_member(path: Path, info: zipfile.ZipInfo) -> bytes:
    """The bytes of one member, never more than it declares (CRC checked by zipfile)."""
    with zipfile.ZipFile(path) as archive, archive.open(info) as stream:
        data = stream.read(info.file_size + 1)
    if len(data) != info.file_size:
        raise ModelLoadError(f"{path}: {info.filename} is {len(data)} bytes, but the archive declares {info.file_size}")
    return data


def _legacy(path: Path, member: str) -> ModelLoadError:
    return refuse(path, f"it uses a legacy torch.export layout ({member}), whose state dict is pickled data "
                  "that could run code", hint="re-save the program with torch.export.save (torch >= 2.7)")


def _members(path: Path) -> tuple[str, dict[str, zipfile.ZipInfo]]:
    """The archive's root folder and its members by relative name, after the zip-level checks."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ModelLoadError(f"{path}: not a readable zip archive ({exc})") from None
    size = path.stat().st_size
    with archive:
        infos = archive.infolist()
    if not infos:
        raise ModelLoadError(f"{path}: the archive is empty")
    legacy = {i.filename.rsplit("/", 1)[-1] for i in infos} & set(LEGACY_FILES)
    if legacy:
        raise _legacy(path, min(legacy, key=LEGACY_FILES.index))
    root = infos[0].filename.split("/", 1)[0]
    members: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        name = info.filename
        if info.is_dir():
            continue
        if not name.startswith(root + "/"):
            raise ModelLoadError(f"{path}: member {name!r} lies outside the archive's root folder {root!r}")
        relative = name[len(root) + 1:]
        if relative in members:
            raise ModelLoadError(f"{path}: the archive holds {relative!r} twice")
        if info.flag_bits & 0x1:
            raise ModelLoadError(f"{path}: {relative} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ModelLoadError(f"{path}: {relative} uses an unsupported zip compression ({info.compress_type})")
        if info.header_offset + info.compress_size > size:
            raise ModelLoadError(
                f"{path}: {relative} declares {info.compress_size} bytes, more than the file holds (truncated?)"
            )
        if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
            raise ModelLoadError(f"{path}: {relative} declares {info.file_size} bytes but stores {info.compress_size}")
        if info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
            raise ModelLoadError(
                f"{path}: {relative} declares {info.file_size} bytes from {info.compress_size} compressed "
                "(a zip bomb?)"
            )
        total += info.file_size
        members[relative] = info
    if total > MAX_TOTAL_BYTES:
        raise ModelLoadError(f"{path}: the archive declares {total} bytes of content, more than interop reads")
    return root, members


def _json_member(path: Path, infos: dict[str, zipfile.ZipInfo], name: str) -> Any:
    info = infos[name]
    if info.file_size > MAX_JSON_BYTES:
        raise ModelLoadError(f"{path}: {name} declares {info.file_size} bytes, too large for a JSON document")
    try:
        return json.loads(read_member(path, info).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelLoadError(f"{path}: {name} is not valid JSON ({str(exc).splitlines()[0][:200]})") from None


# ------------------------------------------------------------------ pickle scanning (never loading)


def pickle_globals(data: bytes) -> list[str]:
    """Every global a pickle stream would import, in order, read from its opcodes (nothing runs).

    Raises ValueError when the stream cannot be read or names a global in a way that cannot be
    checked (an extension code, a name built at run time).
    """
    found: list[str] = []
    memo: dict[Any, Any] = {}
    recent: list[Any] = []
    for opcode, arg, _ in pickletools.genops(data):
        name = opcode.name
        if name in ("GLOBAL", "INST"):
            found.append(str(arg).replace(" ", ".", 1))
        elif name == "STACK_GLOBAL":
            if len(recent) < 2 or not all(isinstance(v, str) for v in recent[-2:]):
                raise ValueError("names a global that cannot be read without running the pickle")
            found.append(f"{recent[-2]}.{recent[-1]}")
        elif name in ("EXT1", "EXT2", "EXT4"):
            raise ValueError("uses the pickle extension registry")
        if name in ("MEMOIZE",):
            memo[len(memo)] = recent[-1] if recent else None
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = recent[-1] if recent else None
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            recent.append(memo.get(arg))
        elif name in ("PROTO", "FRAME", "STOP"):
            pass
        else:
            is_text = isinstance(arg, str) and ("UNICODE" in name or "STRING" in name)
            recent.append(arg if is_text else None)
        del recent[:-4]
    return found


def _tensor_only_pickle(data: bytes) -> str | None:
    """None when ``data`` is a torch.save zip whose pickles name only tensor-rebuilding globals."""
    import io

    if not data.startswith(b"PK"):
        return "it is a raw pickle, not the tensor-only form torch.export.save writes"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as inner:
            pickles = [i for i in inner.infolist() if i.filename.endswith(".pkl")]
            if not pickles:
                return "it holds no pickle torch could read, only unknown content"
            for info in pickles:
                if info.file_size > MAX_JSON_BYTES:
                    return f"its {info.filename} is too large to check"
                for name in pickle_globals(inner.read(info)):
                    if name not in _TENSOR_PICKLE_GLOBALS and not _TENSOR_PICKLE_GLOBAL.match(name):
                        return f"it names {name}"
    except (zipfile.BadZipFile, ValueError, EOFError, OSError) as exc:
        return f"it cannot be checked ({str(exc)[:120]})"
    return None


# ------------------------------------------------------------------ the program JSON


def check_expression(expr: str) -> str | None:
    """None when ``expr`` (a sympy expression torch will ``sympify``) is plain arithmetic."""
    if len(expr) > MAX_EXPR_CHARS:
        return "is too long"
    try:
        tree = ast.parse(expr, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return "is not an expression"
    for node in ast.walk(tree):
        if not isinstance(node, _EXPR_NODES):
            return f"uses Python syntax ({type(node).__name__}) that is not arithmetic"
        if isinstance(node, ast.Name) and node.id not in _EXPR_NAMES and not _SYMBOL.match(node.id):
            return f"names {node.id!r}"
        if isinstance(node, ast.Call) and not isinstance(node.func, ast.Name):
            return "calls something that is not a sympy function"
        if isinstance(node, ast.keyword) and node.arg not in _EXPR_KEYWORDS:
            return f"passes the keyword {node.arg!r}"
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, str) and not _EXPR_STRING.match(value):
                return f"holds the string {value[:40]!r}"
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
                return "holds an integer too large for a shape"
            if not isinstance(value, (str, int, float, bool, type(None))):
                return "holds a constant that is not a number"
        exponent = None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            exponent = node.right
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _POW_CALLS and node.args:
            exponent = node.args[-1]
        if exponent is not None:
            literal = exponent.args[0] if isinstance(exponent, ast.Call) and exponent.args else exponent
            if isinstance(literal, ast.Constant) and isinstance(literal.value, (int, float)) and abs(literal.value) > 256:
                return "raises to a power too large to evaluate"
    return None


def check_target(target: str) -> str | None:
    """None when ``target`` names a torch operator (resolved later from torch.ops only)."""
    if target in SYM_OP_TARGETS or _OP_TARGET.match(target):
        return None
    return f"calls {target[:80]!r}, which is not a torch operator"


_SAFE_FACTORIES = frozenset({"list", "dict", "int", "float", "str", "set", "tuple", "bool"})


def check_treespec(text: str) -> str | None:
    """None when a serialized pytree spec imports nothing.

    torch's treespec_loads imports the module an ``__enum__`` context names and the module
    of a defaultdict's ``default_factory``; interop accepts neither beyond builtin factories.
    """
    try:
        pending = [json.loads(text)]
    except (ValueError, RecursionError):
        return "is not valid JSON"
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            if "__enum__" in value:
                return f"names an enum class to import ({str(value.get('fqn'))[:80]!r})"
            if "default_factory_module" in value or "default_factory_name" in value:
                module, name = value.get("default_factory_module"), value.get("default_factory_name")
                if module != "builtins" or name not in _SAFE_FACTORIES:
                    return f"names a defaultdict factory to import ({str(module)[:40]}.{str(name)[:40]})"
            for key, item in value.items():
                if key == "context" and isinstance(item, str):
                    try:
                        pending.append(json.loads(item))
                    except (ValueError, RecursionError):
                        pass  # not JSON: torch would refuse it, and a plain string imports nothing
                else:
                    pending.append(item)
        elif isinstance(value, list):
            pending.extend(value)
    return None


def _check_program(path: Path, doc: Any) -> set[str]:
    """Walk the whole program JSON; refuse any string torch would turn into code or a callable.

    Returns the operator targets the nodes name."""
    if not isinstance(doc, dict) or not isinstance(doc.get("graph_module"), dict):
        raise ModelLoadError(f"{path}: {PROGRAM} is not a torch.export program (no graph_module)")

    def bad(where: str, why: str) -> ModelLoadError:
        return refuse(path, f"the program's {where} {why}", hint="interop loads only programs torch.export "
                      "wrote from ordinary modules; shape expressions and node targets are checked before loading")

    targets: set[str] = set()
    stack: list[tuple[Any, str]] = [(doc, "")]
    while stack:
        value, key = stack.pop()
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, str) or _CONTROL.search(k):
                    raise bad("keys", "hold control characters")
                if k in ("custom_obj", "as_custom_obj", "script_obj"):
                    raise refuse(path, "the program uses a custom (TorchScript) object, which torch unpickles on "
                                 "load and which could run code")
                stack.append((v, k))
        elif isinstance(value, list):
            stack.extend((v, key) for v in value)
        elif isinstance(value, str):
            if _CONTROL.search(value) or ("\n" in value and key not in _NEWLINE_KEYS):
                raise bad(f"{key or 'text'}", "holds control characters")
            if key == "expr_str":
                why = check_expression(value)
                if why:
                    raise bad("shape expression", f"{why}: {value[:80]!r}")
            elif key in ("target", "as_operator", "as_operators"):
                why = check_target(value)
                if why:
                    raise bad("node", why)
                targets.add(value)
            elif key in ("name", "as_name", "as_names", "arg_name", "user_input_name", "forward_arg_names"):
                if not _NAME.match(value):
                    raise bad(key, f"{value[:80]!r} is not an identifier")
            elif key.endswith("_name") and key not in ("class_fqn",):
                if not _DOTTED.match(value):
                    raise bad(key, f"{value[:80]!r} is not a dotted attribute path")
            elif key == "fqn":
                if not _FQN.match(value):
                    raise bad("module path", f"{value[:80]!r} is not a dotted attribute path")
            elif key == "source_fn_stack":
                for item in value.split(";"):
                    parts = item.split(",")
                    if len(parts) != 2 or not _DOTTED.match(parts[1]):
                        raise bad("source_fn_stack", f"{item[:80]!r} is not 'node,dotted.path'")
            elif key in ("in_spec", "out_spec"):
                why = check_treespec(value)
                if why:
                    raise bad(f"input/output structure ({key})", why)
            elif key == "guards_code":
                pass  # Python source torch would exec; interop drops it (see loading.py)
    if not isinstance(doc.get("guards_code", []), list):
        raise ModelLoadError(f"{path}: {PROGRAM}: guards_code is not a list")
    return targets


# ------------------------------------------------------------------ weights and constants configs


def _payloads(path: Path, infos: dict[str, zipfile.ZipInfo], config_name: str, directory: str,
              constants: bool) -> list[Payload]:
    doc = _json_member(path, infos, config_name)
    config = doc.get("config") if isinstance(doc, dict) else None
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path}: {config_name} has no 'config' table")
    found: list[Payload] = []
    for fqn, entry in config.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("path_name"), str):
            raise ModelLoadError(f"{path}: {config_name}: entry {str(fqn)[:80]!r} has no path_name")
        record = directory + entry["path_name"]
        if constants and not entry["path_name"].startswith(TENSOR_CONSTANT_PREFIX):
            kind = "a custom" if entry["path_name"].startswith("custom_obj") else "an opaque"
            raise refuse(path, f"it holds {kind} object constant {str(fqn)[:80]!r} ({record}), which torch "
                         "unpickles on load and which could run code")
        if entry.get("use_pickle"):
            raise refuse(path, f"it stores {str(fqn)[:80]!r} as pickled data ({record}) that could run code",
                         hint="save the program with torch.export.save from plain tensors")
        if not _DOTTED.match(str(fqn)):
            raise refuse(path, f"{config_name} names {str(fqn)[:80]!r}, which is not a dotted attribute path")
        name = PurePosixPath(entry["path_name"])
        if len(name.parts) != 1 or name.name in ("", ".", ".."):
            raise ModelLoadError(f"{path}: {config_name}: {entry['path_name']!r} is not a file in {directory}")
        if record not in infos:
            raise ModelLoadError(f"{path}: {config_name} names {record}, which the archive does not hold")
        if infos[record].compress_type != zipfile.ZIP_STORED:
            raise ModelLoadError(f"{path}: {record} is compressed; torch.export.save stores tensors uncompressed")
        found.append(_payload(path, str(fqn), record, bool(entry.get("is_param")), entry.get("tensor_meta"),
                              infos[record].file_size))
    return found


def _ints(path: Path, fqn: str, meta: dict[str, Any], key: str) -> list[int]:
    raw = meta.get(key)
    values = []
    for item in raw if isinstance(raw, list) else [raw]:
        value = item.get("as_int") if isinstance(item, dict) and len(item) == 1 else None
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 62:
            raise ModelLoadError(f"{path}: tensor {fqn!r} has a {key} that is not a non-negative integer")
        values.append(value)
    return values


def _payload(path: Path, fqn: str, record: str, is_param: bool, meta: Any, nbytes: int) -> Payload:
    """A tensor's declaration, checked against the bytes its record really holds."""
    if not isinstance(meta, dict):
        raise ModelLoadError(f"{path}: tensor {fqn!r} has no tensor_meta")
    code = meta.get("dtype")
    if code not in ITEMSIZE or isinstance(code, bool):
        raise ModelLoadError(f"{path}: tensor {fqn!r} has an unknown dtype ({str(code)[:20]})")
    if meta.get("layout", STRIDED) != STRIDED:
        raise ModelLoadError(f"{path}: tensor {fqn!r} is not a dense (strided) tensor")
    device = meta.get("device") or {}
    if not isinstance(device, dict) or device.get("type", "cpu") != "cpu":
        raise ModelLoadError(f"{path}: tensor {fqn!r} is stored for device {str(device)[:40]}; interop runs on the CPU")
    sizes, strides = _ints(path, fqn, meta, "sizes"), _ints(path, fqn, meta, "strides")
    (offset,) = _ints(path, fqn, meta, "storage_offset")
    if len(sizes) != len(strides):
        raise ModelLoadError(f"{path}: tensor {fqn!r} has {len(sizes)} sizes but {len(strides)} strides")
    itemsize = ITEMSIZE[code]
    if nbytes % itemsize:
        raise ModelLoadError(f"{path}: {record} is {nbytes} bytes, not a whole number of {itemsize}-byte elements "
                             f"(tensor {fqn!r})")
    elements = nbytes // itemsize
    needed = 0 if 0 in sizes else offset + sum((n - 1) * st for n, st in zip(sizes, strides)) + 1
    if needed > elements:
        raise ModelLoadError(f"{path}: tensor {fqn!r} needs {needed} elements, but {record} holds {elements}")
    return Payload(fqn, record, is_param, code, sizes, strides, offset, bool(meta.get("requires_grad")), elements)


def inspect_archive(path: Path) -> InspectedArchive:
    """Every check that needs no deserialisation; raises ModelLoadError naming the reason."""
    root, infos = _members(path)
    names = set(infos)
    legacy = sorted(n for n in names if n.startswith((WEIGHTS_DIR, CONSTANTS_DIR)) and n.endswith(".pt"))
    if legacy:
        raise _legacy(path, legacy[0])
    for folder, what in CODE_DIRS.items():
        if any(n.startswith(folder) for n in names):
            raise refuse(path, f"it holds {what} ({folder}), which interop does not load")
    if PROGRAM not in names:
        others = sorted(n for n in names if n.startswith("models/"))
        raise ModelLoadError(
            f"{path}: the archive holds no {PROGRAM}" + (f" (only {', '.join(others[:3])})" if others else ""),
            hint="a .pt2 file is what torch.export.save writes",
        )
    for name in ("archive_format", "archive_version", "byteorder"):
        if name in names and infos[name].file_size > 64:
            raise ModelLoadError(f"{path}: {name} is {infos[name].file_size} bytes, not a short tag")
    if "archive_format" in names and read_member(path, infos["archive_format"]).strip() != b"pt2":
        raise ModelLoadError(f"{path}: archive_format is not 'pt2'")
    if "archive_version" in names and read_member(path, infos["archive_version"]).strip() != ARCHIVE_VERSION:
        version = read_member(path, infos["archive_version"]).strip().decode("utf-8", "replace")
        raise ModelLoadError(f"{path}: archive version {version!r}; interop reads version {ARCHIVE_VERSION.decode()}")
    if "byteorder" in names and read_member(path, infos["byteorder"]).strip() != b"little":
        raise ModelLoadError(f"{path}: the tensors are not stored little-endian, which interop does not read")
    for name in sorted(n for n in names if n.startswith(SAMPLE_INPUTS_DIR)):
        why = _tensor_only_pickle(read_member(path, infos[name]))
        if why:
            raise refuse(path, f"it contains pickled data ({name}) that could run code: {why}",
                         hint="interop never unpickles; re-save the program with torch.export.save")
    for required in (WEIGHTS_CONFIG, CONSTANTS_CONFIG):
        if required not in names:
            raise ModelLoadError(f"{path}: the archive holds no {required}")
    weights = _payloads(path, infos, WEIGHTS_CONFIG, WEIGHTS_DIR, constants=False)
    constants = _payloads(path, infos, CONSTANTS_CONFIG, CONSTANTS_DIR, constants=True)
    program = _json_member(path, infos, PROGRAM)
    targets = _check_program(path, program)
    return InspectedArchive(path, root, infos, program, weights, constants, targets)
