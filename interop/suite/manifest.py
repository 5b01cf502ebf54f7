"""The suite manifest: ``interop.toml`` or ``[tool.interop.suite]`` in ``pyproject.toml``.

Reading a manifest has two steps. :func:`load` parses and validates the TOML with
the same schema walk as ``[tool.interop.check]`` (unknown keys, wrong types, missing
files and globs that match nothing are exit 2, pointing at the line) and expands
every model entry into :class:`Entry` objects, one per (model, target) plus one per
golden file. :func:`plan_entries` then checks them against the installed plugins —
source and target formats, the converter route (exit 3 when there is none) and
each target's options against what the route's converters declare — importing no
framework. The keys are documented in docs/suite.md.
"""

from __future__ import annotations

import glob
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interop.checker.inputs import DATASETS, parse_batch_sizes, parse_range
from interop.checker.tolerances import (
    _TOLERANCE_PAIR,
    OTHER_KEYS,
    ConfigError,
    _describe,
    _toml_number,
    check_error_stat,
    load_toml,
    table_at,
    walk_config,
)
from interop.plugin_api import InteropError
from interop.suite.tomllines import line_of

#: The manifest file ``interop suite`` looks for first; then pyproject.toml's [tool.interop.suite].
MANIFEST_NAME = "interop.toml"
PYPROJECT_TABLE = ("tool", "interop", "suite")
#: The default time an entry (one conversion and its check) may take, in seconds.
DEFAULT_TIMEOUT = 600.0
DEFAULT_CACHE_DIR = ".interop-cache"
#: The pseudo-target of a model's golden-file comparison.
GOLDEN = "golden"


# --------------------------------------------------------------------------- leaf checks


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InteropError(f"{what} must be a non-empty string, got {_describe(value)}")
    return value


def _names(value: Any, what: str) -> list[str]:
    """``"onnx"`` or ``["onnx", "other"]``: target names."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or any(not isinstance(v, str) or not v.strip() for v in items):
        raise InteropError(f"{what} must be a target name or a list of them, got {_describe(value)}",
                           hint='for example to = ["onnx"]')
    duplicates = sorted({v for v in items if items.count(v) > 1})
    if duplicates:
        raise InteropError(f"{what} names {', '.join(duplicates)} twice")
    return list(items)


def _positive_number(value: Any, what: str) -> float:
    number = _toml_number(value, what)
    if number <= 0:
        raise InteropError(f"{what} must be positive, got {value!r}")
    return number


def _integer(minimum: int) -> Callable[[Any, str], int]:
    def check(value: Any, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            kind = "a positive integer" if minimum == 1 else "a non-negative integer"
            raise InteropError(f"{what} must be {kind}, got {_describe(value)}")
        return value
    return check


def _dataset(value: Any, what: str) -> str:
    if value not in DATASETS:
        raise InteropError(f"{what} must be one of {', '.join(DATASETS)}, got {_describe(value)}")
    return value


def _batch_sizes(value: Any, what: str) -> list[int]:
    if not isinstance(value, list):
        raise InteropError(f"{what} must be a list of positive integers, got {_describe(value)}")
    try:
        return list(parse_batch_sizes(value))
    except InteropError as exc:
        raise InteropError(f"{what}: {exc.message}") from None


def _value_range(value: Any, what: str) -> list[float]:
    if not isinstance(value, list) or any(isinstance(v, (bool, str)) for v in value):
        raise InteropError(f"{what} must be [LOW, HIGH], got {_describe(value)}")
    try:
        return list(parse_range(value))
    except InteropError as exc:
        raise InteropError(f"{what}: {exc.message}") from None


def _ranges(value: Any, what: str) -> list[float] | dict[str, list[float]]:
    """``[LOW, HIGH]`` for every input, or ``{input = [LOW, HIGH], ...}`` per input."""
    if isinstance(value, dict):
        return {name: _value_range(item, f"{what}.{name}") for name, item in value.items()}
    return _value_range(value, what)


def _shape(value: Any, what: str) -> list[int]:
    if not isinstance(value, list) or not value or any(
            isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in value):
        raise InteropError(f"{what} must be a list of positive integers (the input's shape), got {_describe(value)}")
    return list(value)


def _error_stat(value: Any, what: str) -> str | dict[str, str]:
    """A statistic of interop check (``"max"``) for every output, or ``{output = "p99"}`` per output."""
    if isinstance(value, dict):
        return {name: check_error_stat(stat, f"{what}.{name}") for name, stat in value.items()}
    return check_error_stat(value, what)


def _option_value(value: Any, what: str) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise InteropError(f"{what} must be finite, got {value!r}")
    if not isinstance(value, (str, int, float, bool)):
        raise InteropError(f"{what}: a converter option is a string, number or boolean, got {_describe(value)}")
    return value


def _relative_path(value: Any, what: str) -> str:
    return _string(value, what)


# --------------------------------------------------------------------------- schema

#: Target settings: the reserved keys, every other key is a converter option of the route.
TARGET_KEYS: dict[Any, Any] = {
    "format": _string,
    "runtime": _string,
    "atol": _toml_number,
    "rtol": _toml_number,
    "tolerances": ("each", _TOLERANCE_PAIR),
    "error_stat": _error_stat,
    OTHER_KEYS: _option_value,
}

#: Keys valid both at the top of the manifest (defaults for every model) and in a [[models]] entry.
SHARED_KEYS: dict[Any, Any] = {
    "to": _names,
    "timeout": _positive_number,
    "inputs": _relative_path,
    "dataset": _dataset,
    "seed": _integer(0),
    "samples": _integer(1),
    "batch_sizes": _batch_sizes,
    "max_batch": _integer(1),
    "range": _ranges,
    "input_shapes": ("each", _shape),
    "atol": _toml_number,
    "rtol": _toml_number,
    "tolerances": ("each", _TOLERANCE_PAIR),
    "error_stat": _error_stat,
    "runtimes": ("each", _string),
    "targets": ("each", TARGET_KEYS),
    "golden": _relative_path,
}
MODEL_KEYS: dict[Any, Any] = {**SHARED_KEYS, "path": _relative_path, "name": _string, "format": _string}
SUITE_KEYS: dict[Any, Any] = {
    **SHARED_KEYS,
    "models": ("list", MODEL_KEYS),
    "cache_dir": _relative_path,
    "threads": _integer(1),
}

#: Keys that are check options (passed to interop.check), with the make_options name.
CHECK_KEYS = {
    "dataset": "dataset", "seed": "seed", "samples": "samples", "batch_sizes": "batch_sizes",
    "max_batch": "max_batch", "atol": "atol", "rtol": "rtol", "runtimes": "runtimes", "error_stat": "error_stats",
}


# --------------------------------------------------------------------------- data


@dataclass
class Target:
    """What one model is converted into: a format, converter options, check settings."""

    name: str
    format: str
    options: dict[str, Any] = field(default_factory=dict)
    runtime: str | None = None
    tolerance: dict[str, Any] = field(default_factory=dict)  # atol, rtol, tolerances overrides
    path: tuple[Any, ...] = ()  # where the target is configured (key path, for errors)


@dataclass
class Entry:
    """One unit of work: convert a model into one target and check it, or check it against its golden file."""

    id: str
    model: str
    path: Path
    target: Target | None  # None: the golden-file comparison
    source_format: str | None = None
    check: dict[str, Any] = field(default_factory=dict)  # interop.check options (JSON-able)
    golden: Path | None = None
    timeout: float = DEFAULT_TIMEOUT
    key_path: tuple[Any, ...] = ()  # the [[models]] entry, for errors
    line: int | None = None
    route: list[str] = field(default_factory=list)

    @property
    def target_name(self) -> str:
        return self.target.name if self.target is not None else GOLDEN

    @property
    def files(self) -> dict[str, Path]:
        """Every file the entry reads, by role."""
        found = {"model": self.path}
        if isinstance(self.check.get("inputs"), str):
            found["inputs"] = Path(self.check["inputs"])
        if self.golden is not None and self.target is None:
            found["golden"] = self.golden
        return found


@dataclass
class Manifest:
    """A validated manifest: where it is, its entries and suite-wide settings."""

    path: Path
    text: str
    prefix: tuple[str, ...]  # () for interop.toml, ("tool", "interop", "suite") in pyproject.toml
    entries: list[Entry]
    cache_dir: Path
    threads: int = 1
    pyproject: Path | None = None  # the project whose [tool.interop.check] applies to every check

    @property
    def root(self) -> Path:
        return self.path.parent

    def error(self, message: str, path: tuple[Any, ...], hint: str | None = None,
              exit_code: int = 2) -> InteropError:
        """An error pointing at the line of ``path`` (a key path inside the suite table)."""
        return located(ConfigError(message, hint, file=self.path, path=(*self.prefix, *path)), self.text,
                       exit_code)


def located(error: ConfigError, text: str, exit_code: int = 2) -> InteropError:
    """``error`` with ``FILE:LINE:`` in front of its message (the line of its key path)."""
    line = line_of(text, error.path) if error.path else None
    where = f"{error.file}:{line}" if line else f"{error.file}"
    message = error.message
    prefix = f"{error.file}: "
    if message.startswith(prefix):
        message = message[len(prefix):]
    if message.startswith(": "):  # a key of the top level of interop.toml has an empty parent
        message = message[2:]
    result = ConfigError(f"{where}: {message}", error.hint, file=error.file, path=error.path)
    result.exit_code = exit_code
    return result


# --------------------------------------------------------------------------- finding and loading


def find_manifest(start: Path | None = None) -> Path:
    """``interop.toml`` in ``start`` or a parent, or the nearest pyproject.toml with [tool.interop.suite]."""
    folder = (start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / MANIFEST_NAME).is_file():
            return candidate / MANIFEST_NAME
        pyproject = candidate / "pyproject.toml"
        if pyproject.is_file() and _has_suite_table(pyproject):
            return pyproject
    raise InteropError(
        f"no {MANIFEST_NAME} here or above, and no pyproject.toml with a [tool.interop.suite] table",
        hint="write one (docs/suite.md) or name it: interop suite MANIFEST",
    )


def _has_suite_table(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return "interop.suite" in text and table_at(load_toml(path), PYPROJECT_TABLE, path) is not None


def load(path: str | Path) -> Manifest:
    """Parse and validate the manifest at ``path``; errors are exit 2 naming the file and line."""
    path = Path(path)
    if path.is_dir():  # its interop.toml, else its pyproject.toml when that has the table
        pyproject = path / "pyproject.toml"
        use_pyproject = not (path / MANIFEST_NAME).is_file() and pyproject.is_file() and _has_suite_table(pyproject)
        path = pyproject if use_pyproject else path / MANIFEST_NAME
    if not path.is_file():
        raise InteropError(f"manifest {path} does not exist", hint=f"write {MANIFEST_NAME} (docs/suite.md)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InteropError(f"cannot read manifest {path}: {exc}") from None
    document = load_toml(path)
    prefix: tuple[str, ...] = PYPROJECT_TABLE if path.name == "pyproject.toml" else ()
    try:
        table = table_at(document, prefix, path) if prefix else document
        if table is None:
            raise InteropError(f"{path} has no [tool.interop.suite] table", hint="docs/suite.md shows one")
        settings = walk_config(SUITE_KEYS, table, ".".join(prefix), path, prefix)
    except ConfigError as exc:
        raise located(exc, text) from None
    # The path as the user spelled it, for messages; every path derived from it is absolute.
    manifest = Manifest(path=path, text=text, prefix=prefix, entries=[], cache_dir=Path(),
                        threads=settings.get("threads", 1))
    root = path.parent.resolve()
    manifest.cache_dir = root / settings.get("cache_dir", DEFAULT_CACHE_DIR)
    if prefix:
        manifest.pyproject = path.resolve()
    else:
        from interop.checker.tolerances import find_pyproject

        manifest.pyproject = find_pyproject(root)
    models = settings.get("models", [])
    if not models:
        raise manifest.error(f"{path}: no models: add a [[models]] entry with a path", ("models",),
                             hint='[[models]]\npath = "model.onnx"\nto = ["onnx"]')
    first_seen: dict[str, tuple[Any, ...]] = {}
    golden_of: dict[Path, str] = {}
    for index, model in enumerate(models):
        for entry in _expand(manifest, root, settings, model, ("models", index)):
            first = first_seen.setdefault(entry.model, entry.key_path)
            if first != entry.key_path:
                raise manifest.error(
                    f"{path}: model {entry.model} is listed twice (first at line "
                    f"{line_of(text, (*prefix, *first))})", (*entry.key_path, "path"),
                    hint="give one of them another name = ...")
            if entry.golden is not None and golden_of.setdefault(entry.golden, entry.model) != entry.model:
                where = (*entry.key_path, "golden") if "golden" in model else ("golden",)
                raise manifest.error(
                    f"{path}: models {golden_of[entry.golden]} and {entry.model} would share the golden file "
                    f"{entry.golden}", where, hint='use a placeholder: golden = "golden/{name}.npz"')
            manifest.entries.append(entry)
    return manifest


def _expand(manifest: Manifest, root: Path, suite: dict[str, Any], model: dict[str, Any],
            key_path: tuple[Any, ...]) -> list[Entry]:
    """One model entry -> its entries: every matched file times every target (+ golden)."""
    if "path" not in model:
        raise manifest.error(f"{manifest.path}: {_dotted(key_path)}: no path", key_path,
                             hint='every [[models]] entry names its model: path = "model.onnx"')
    pattern = model["path"]
    is_glob = glob.has_magic(pattern)
    if is_glob:
        # Never the suite's own outputs (a cache folder that is not hidden can lie under a glob).
        matches = sorted(p for p in map(Path, glob.glob(str(root / pattern), recursive=True))
                         if manifest.cache_dir not in p.resolve().parents)
        if not matches:
            raise manifest.error(f"{manifest.path}: path {pattern!r} matches no file or folder",
                                 (*key_path, "path"))
        if "name" in model:
            raise manifest.error(f"{manifest.path}: name cannot be given for a glob ({pattern!r})",
                                 (*key_path, "name"), hint="each matched file is named by its path")
    else:
        matches = [root / pattern]
        if not matches[0].exists():
            raise manifest.error(f"{manifest.path}: model {pattern} does not exist (looked in {root})",
                                 (*key_path, "path"))
    inherited = {k: v for k, v in suite.items() if k in SHARED_KEYS and k != "targets"}
    if "inputs" in model or "dataset" in model:  # a model's source of inputs replaces the top level's
        inherited.pop("inputs", None)
        inherited.pop("dataset", None)
    settings = {**inherited, **model}
    targets_config = _merge_targets(suite.get("targets", {}), model.get("targets", {}))
    to = settings.get("to", [])
    line = line_of(manifest.text, (*manifest.prefix, *key_path))
    for name in model.get("targets", {}):
        if name not in to:
            raise manifest.error(f"{manifest.path}: target {name} is configured but not in to",
                                 (*key_path, "targets", name), hint=f"add it: to = {[*to, name]!r}")
    if GOLDEN in to:
        raise manifest.error(f"{manifest.path}: {GOLDEN!r} is not a target name (use golden = FILE)",
                             (*key_path, "to") if "to" in model else ("to",))
    if not to and "golden" not in settings:
        raise manifest.error(f"{manifest.path}: {_dotted(key_path)} has nothing to do: no targets",
                             key_path, hint='add to = ["onnx"] (here or at the top of the manifest)')
    check = _check_options(manifest, root, settings, model, key_path)
    entries = []
    for match in matches:
        name = model.get("name") or _relative(match, root)
        golden = None
        if "golden" in settings:
            golden = _golden_path(manifest, root, settings["golden"], name, match,
                                  (*key_path, "golden") if "golden" in model else ("golden",))
        for target_name in to:
            config = targets_config.get(target_name, {})
            target = Target(
                name=target_name,
                format=config.get("format", target_name),
                options={k: v for k, v in config.items() if k not in TARGET_KEYS},
                runtime=config.get("runtime"),
                tolerance={k: config[k] for k in ("atol", "rtol", "tolerances", "error_stat") if k in config},
                path=(*key_path, "targets", target_name) if target_name in model.get("targets", {})
                else ("targets", target_name) if target_name in suite.get("targets", {})
                else (*key_path, "to") if "to" in model else ("to",),
            )
            entries.append(Entry(
                id=f"{name}[{target_name}]", model=name, path=match, target=target,
                source_format=model.get("format"), check=dict(check), golden=None,
                timeout=settings.get("timeout", DEFAULT_TIMEOUT), key_path=key_path, line=line,
            ))
        if golden is not None:
            entries.append(Entry(
                id=f"{name}[{GOLDEN}]", model=name, path=match, target=None, source_format=model.get("format"),
                check=dict(check), golden=golden, timeout=settings.get("timeout", DEFAULT_TIMEOUT),
                key_path=key_path, line=line,
            ))
    return entries


def _golden_path(manifest: Manifest, root: Path, template: str, name: str, match: Path,
                 where: tuple[Any, ...]) -> Path:
    """``golden = "golden/{name}.npz"``: {name} is the model's name (``/`` as ``_``), {stem} its file stem."""
    try:
        golden = root / template.format(name=name.replace("/", "_"), stem=match.name.split(".")[0])
    except (KeyError, IndexError, ValueError) as exc:
        raise manifest.error(f"{manifest.path}: golden {template!r}: unknown placeholder {exc}", where,
                             hint="the placeholders are {name} and {stem}") from None
    if golden.is_dir() or golden.is_symlink():
        raise manifest.error(f"{manifest.path}: golden {golden} is a directory or a link; name an .npz file",
                             where)
    return golden


def _merge_targets(suite: dict[str, dict[str, Any]], model: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    merged = {name: dict(config) for name, config in suite.items()}
    for name, config in model.items():
        merged.setdefault(name, {}).update(config)
    return merged


def _check_options(manifest: Manifest, root: Path, settings: dict[str, Any], model: dict[str, Any],
                   key_path: tuple[Any, ...]) -> dict[str, Any]:
    """The interop.check options of a model entry (JSON-able; paths absolute)."""
    check = {CHECK_KEYS[k]: v for k, v in settings.items() if k in CHECK_KEYS}
    if "tolerances" in settings:
        check["tolerances"] = {name: list(pair) for name, pair in settings["tolerances"].items()}
    if "inputs" in settings and "dataset" in settings:
        where = (*key_path, "dataset") if "dataset" in model else ("dataset",)
        raise manifest.error(f"{manifest.path}: inputs and dataset both given for {_dotted(key_path)}",
                             where, hint="choose one source of inputs")
    if "inputs" in settings:
        inputs = root / settings["inputs"]
        if not inputs.is_file():
            where = (*key_path, "inputs") if "inputs" in model else ("inputs",)
            raise manifest.error(f"{manifest.path}: inputs file {settings['inputs']} does not exist", where)
        check["inputs"] = str(inputs)
    if "range" in settings:
        check["value_range"] = settings["range"]
    if "input_shapes" in settings:
        check["input_shapes"] = settings["input_shapes"]
    return check


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _dotted(key_path: tuple[Any, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(key_path))


# --------------------------------------------------------------------------- against the plugins


def plan_entries(manifest: Manifest, registry: Any, update_golden: bool = False) -> None:
    """Check every entry against the installed plugins (no framework is imported).

    Sets each entry's source format and route. An unknown format, an option no
    converter of the route declares or a value it does not accept is exit 2; no
    route is exit 3; both point at the manifest line.
    """
    from interop.conversion import split_options
    from interop.formats import detect_format
    from interop.routing import plan_route

    known = ", ".join(sorted(registry.formats))
    for entry in manifest.entries:
        for fmt, runtime in entry.check.get("runtimes", {}).items():
            _check_runtime(manifest, entry, registry, runtime, fmt, _runtimes_key(manifest, entry, fmt))
        model_where = (*entry.key_path, "format") if entry.source_format else (*entry.key_path, "path")
        try:
            if entry.source_format is not None and entry.source_format not in registry.formats:
                raise InteropError(f"unknown format {entry.source_format!r}", hint=f"known formats: {known}")
            entry.source_format = entry.source_format or detect_format(entry.path, registry)
        except InteropError as exc:
            raise manifest.error(f"{manifest.path}: {entry.model}: {exc.message}", model_where, exc.hint) from None
        if entry.target is None:
            assert entry.golden is not None
            if not update_golden and not entry.golden.is_file():
                raise manifest.error(
                    f"{manifest.path}: golden file {entry.golden} of {entry.model} does not exist",
                    (*entry.key_path, "golden"), hint="write it with: interop suite --update-golden")
            entry.route = [entry.source_format]
            continue
        target = entry.target
        if target.format not in registry.formats:
            raise manifest.error(f"{manifest.path}: {entry.id}: unknown target format {target.format!r}",
                                 target.path, hint=f"known formats: {known}")
        if target.format == entry.source_format:
            raise manifest.error(f"{manifest.path}: {entry.id}: the model is already {target.format}",
                                 target.path, hint="nothing to convert; remove this target")
        try:
            route = plan_route(entry.source_format, target.format, registry)
        except InteropError as exc:
            raise manifest.error(f"{manifest.path}: {entry.id}: {exc.message}", target.path, exc.hint,
                                 exit_code=exc.exit_code) from None
        entry.route = [entry.source_format, *(p.item.target for p in route)]
        if target.runtime is not None:
            _check_runtime(manifest, entry, registry, target.runtime, target.format, (*target.path, "runtime"))
        declared = {opt.name: opt for provided in route for opt in provided.item.options}
        for name, value in target.options.items():
            where = (*target.path, name) if target.path and target.path[-1] == target.name else target.path
            option = declared.get(name)
            if option is None:
                steps = " -> ".join(entry.route)
                offered = ", ".join(sorted(declared)) or "none"
                raise manifest.error(
                    f"{manifest.path}: {entry.id}: option {name} is not declared by any converter on the route "
                    f"{steps}", where, hint=f"options of this route: {offered}")
            problem = _option_type_problem(option, value)
            if problem:
                raise manifest.error(f"{manifest.path}: {entry.id}: option {name} {problem}", where)
            try:  # the declaring plugin's own checks (choices, bounds), one option at a time for its line
                split_options(route, {name: value})
            except InteropError as exc:
                raise manifest.error(f"{manifest.path}: {entry.id}: {exc.message}", where, exc.hint) from None


def _check_runtime(manifest: Manifest, entry: Entry, registry: Any, runtime: str, fmt: str,
                   where: tuple[Any, ...]) -> None:
    """A runtime named in the manifest exists and runs ``fmt`` (whether it is available is each machine's
    business: a cluster's workers may differ from this one)."""
    if runtime not in registry.runtimes:
        raise manifest.error(f"{manifest.path}: {entry.id}: unknown runtime {runtime!r}", where,
                             hint=f"runtimes: {', '.join(sorted(registry.runtimes))}")
    formats = registry.runtimes[runtime].item.formats
    if fmt not in formats:
        raise manifest.error(f"{manifest.path}: {entry.id}: runtime {runtime} does not run {fmt} models "
                             f"(it runs {', '.join(formats)})", where)


def _runtimes_key(manifest: Manifest, entry: Entry, fmt: str) -> tuple[Any, ...]:
    model_key = (*entry.key_path, "runtimes", fmt)
    found = line_of(manifest.text, (*manifest.prefix, *model_key)) != line_of(
        manifest.text, (*manifest.prefix, *entry.key_path))
    return model_key if found else ("runtimes", fmt)


def _option_type_problem(option: Any, value: Any) -> str | None:
    expected = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}.get(option.type, (str,))
    if isinstance(value, bool) and option.type != "bool":
        return f"expects {option.type}, got {_describe(value)}"
    if not isinstance(value, expected):
        return f"expects {option.type}, got {_describe(value)}"
    return None
