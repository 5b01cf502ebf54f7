"""Which tolerance applies to an output: precision defaults, project settings, command-line overrides.

Each output is judged by an error statistic (:mod:`interop.checker.metrics`; ``scaled``
unless ``--check-error-stat``/``error_stat`` says otherwise) against ``atol`` and
``rtol``. For each output the
most specific setting wins, and between two equally specific settings the
command line beats ``pyproject.toml``:

1. ``--tolerance NAME=ATOL,RTOL`` (command line, one output)
2. ``[tool.interop.check.tolerances] NAME = [ATOL, RTOL]`` (project, one output)
3. ``--atol`` / ``--rtol`` (command line, every output)
4. ``atol`` / ``rtol`` in ``[tool.interop.check]`` (project, every output)
5. ``[tool.interop.check.precision.<p>]`` (project default for a precision)
6. the built-in default of the pair's precision (:data:`PRECISION_DEFAULTS`)

``atol`` and ``rtol`` are resolved independently, so ``--rtol`` alone keeps the
default ``atol``. Integer and boolean outputs are compared exactly unless an
output-specific tolerance says otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interop.checker.metrics import DEFAULT_ERROR_STAT, ERROR_STATS
from interop.plugin_api import InteropError

#: Built-in (atol, rtol) per compute precision, and per weight compression (a model whose weights
#: were quantized to int8 or palettized to 8 or 4 bits, whatever it computes in: METADATA_WEIGHT_COMPRESSION).
#: A pair takes the lower precision of its two models.
PRECISION_DEFAULTS: dict[str, tuple[float, float]] = {
    "fp64": (1e-9, 1e-7),
    "fp32": (1e-5, 2e-4),  # chosen by the calibration table (docs/check.md, tests/check/calibration.py)
    "fp16": (1e-2, 1e-2),
    "bf16": (5e-2, 5e-2),
    "int8": (5e-2, 5e-2),
    "palettize8": (1e-1, 1e-1),
    "palettize4": (0.5, 0.5),
}
#: From the most to the least precise.
PRECISION_ORDER = ("fp64", "fp32", "fp16", "bf16", "int8", "palettize8", "palettize4")
#: The entries of PRECISION_DEFAULTS that name a weight compression, not a compute precision.
WEIGHT_COMPRESSIONS = ("int8", "palettize8", "palettize4")


def lower_precision(first: str, second: str) -> str:
    """The less precise of two precision names (unknown names count as fp32)."""
    rank = {name: index for index, name in enumerate(PRECISION_ORDER)}
    return max(first, second, key=lambda p: rank.get(p, rank["fp32"]))


@dataclass(frozen=True)
class Tolerance:
    """The tolerance applied to one output, where each number came from, and the error statistic judged."""

    atol: float
    rtol: float
    source: str
    stat: str = DEFAULT_ERROR_STAT

    def to_dict(self) -> dict[str, Any]:
        return {"atol": self.atol, "rtol": self.rtol, "source": self.source, "stat": self.stat}


@dataclass
class ProjectSettings:
    """The ``[tool.interop.check]`` table of a pyproject.toml (empty when there is none)."""

    path: Path | None = None
    atol: float | None = None
    rtol: float | None = None
    per_output: dict[str, tuple[float, float]] = field(default_factory=dict)
    per_precision: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    error_stat: str | None = None


@dataclass
class ToleranceSettings:
    """Everything that can set a tolerance; :meth:`for_output` applies the precedence."""

    atol: float | None = None
    rtol: float | None = None
    per_output: dict[str, tuple[float, float]] = field(default_factory=dict)
    project: ProjectSettings = field(default_factory=ProjectSettings)
    #: ``--check-error-stat STAT`` (every output) and ``--check-error-stat NAME=STAT``.
    stat: str | None = None
    per_output_stat: dict[str, str] = field(default_factory=dict)

    def error_stat(self, output: str, exact: bool = False) -> str:
        """The statistic judging ``output``: per output, then every output, then the project, then the default.

        Exact (integer) comparisons judge every element.
        """
        if output in self.per_output_stat:
            return self.per_output_stat[output]
        if exact:
            return "elementwise"
        return self.stat or self.project.error_stat or DEFAULT_ERROR_STAT

    def for_output(self, output: str, precision: str, exact: bool = False) -> Tolerance:
        """The tolerance for ``output`` of a pair computing in ``precision``."""
        stat = self.error_stat(output, exact)
        if output in self.per_output:
            atol, rtol = self.per_output[output]
            return Tolerance(atol, rtol, f"--tolerance {output}", stat)
        if output in self.project.per_output:
            atol, rtol = self.project.per_output[output]
            return Tolerance(atol, rtol, f"{self._project_name()} tolerances.{output}", stat)
        if exact:
            return Tolerance(0.0, 0.0, "exact (integer or boolean output)", stat)
        default_atol, default_rtol = PRECISION_DEFAULTS.get(precision, PRECISION_DEFAULTS["fp32"])
        atol, atol_from = default_atol, f"{precision} default"
        rtol, rtol_from = default_rtol, f"{precision} default"
        project_atol, project_rtol = self.project.per_precision.get(precision, (None, None))
        if project_atol is not None:
            atol, atol_from = project_atol, f"{self._project_name()} precision.{precision}"
        if project_rtol is not None:
            rtol, rtol_from = project_rtol, f"{self._project_name()} precision.{precision}"
        if self.project.atol is not None:
            atol, atol_from = self.project.atol, self._project_name()
        if self.project.rtol is not None:
            rtol, rtol_from = self.project.rtol, self._project_name()
        if self.atol is not None:
            atol, atol_from = self.atol, "--atol"
        if self.rtol is not None:
            rtol, rtol_from = self.rtol, "--rtol"
        source = atol_from if atol_from == rtol_from else f"atol: {atol_from}; rtol: {rtol_from}"
        return Tolerance(atol, rtol, source, stat)

    def _project_name(self) -> str:
        return f"{self.project.path}" if self.project.path else "pyproject.toml"

    def to_dict(self) -> dict[str, Any]:
        return {
            "defaults": {p: {"atol": a, "rtol": r} for p, (a, r) in PRECISION_DEFAULTS.items()},
            "atol": self.atol,
            "rtol": self.rtol,
            "per_output": {k: {"atol": a, "rtol": r} for k, (a, r) in self.per_output.items()},
            "error_stat": self.stat or self.project.error_stat or DEFAULT_ERROR_STAT,
            "per_output_error_stat": dict(self.per_output_stat),
            "project": None if self.project.path is None else {
                "path": str(self.project.path),
                "atol": self.project.atol,
                "rtol": self.project.rtol,
                "per_output": {k: {"atol": a, "rtol": r} for k, (a, r) in self.project.per_output.items()},
                "per_precision": {
                    k: {"atol": a, "rtol": r} for k, (a, r) in self.project.per_precision.items()
                },
                "error_stat": self.project.error_stat,
            },
        }


# --------------------------------------------------------------------------- parsing


def _describe(value: Any) -> str:
    """``value`` as the user wrote it, with its TOML type: "a string 'x'", "a list [1, 2]"."""
    kinds = {bool: "a boolean", str: "a string", int: "an integer", float: "a number",
             list: "a list", dict: "a table"}
    kind = next((name for cls, name in kinds.items() if isinstance(value, cls)), type(value).__name__)
    if isinstance(value, dict):
        return kind
    return f"{kind} {str(value).lower()}" if isinstance(value, bool) else f"{kind} {value!r}"


def _non_negative(value: Any, what: str) -> float:
    """A finite number >= 0 (booleans, strings, NaN and infinities refused), or exit 2 naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InteropError(f"{what} must be a number, got {_describe(value)}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InteropError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise InteropError(f"{what} must be a finite number, got {value!r}")
    if number < 0.0:
        raise InteropError(f"{what} must be zero or positive, got {value!r}")
    return number


def _toml_number(value: Any, what: str) -> float:
    """A tolerance written in TOML: an actual number (a quoted "1e-3" is a typo worth reporting)."""
    if isinstance(value, str):
        raise InteropError(f"{what} must be a number, got {_describe(value)}",
                           hint="write the number without quotes")
    return _non_negative(value, what)


def parse_tolerance_option(text: str) -> tuple[str, tuple[float, float]]:
    """``"logits=1e-4,1e-3"`` -> ``("logits", (1e-4, 1e-3))``; bad text is exit 2."""
    name, sep, numbers = text.rpartition("=")
    parts = numbers.split(",")
    if not sep or not name.strip() or len(parts) != 2:
        raise InteropError(
            f"--tolerance {text!r} is not NAME=ATOL,RTOL",
            hint="for example --tolerance logits=1e-4,1e-3",
        )
    what = f"--tolerance {name.strip()}"
    return name.strip(), (_non_negative(parts[0], f"{what} atol"), _non_negative(parts[1], f"{what} rtol"))


def find_pyproject(start: Path | None = None) -> Path | None:
    """The nearest pyproject.toml in ``start`` (default: the working directory) or above it."""
    folder = (start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        path = candidate / "pyproject.toml"
        if path.is_file():
            return path
    return None


def load_toml(path: Path) -> dict[str, Any]:
    import tomllib  # interop requires Python 3.11+

    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InteropError(f"cannot read {path}: {exc}") from None


def _pair(value: Any, what: str, number: Callable[[Any, str], float] = _non_negative) -> tuple[float, float]:
    """``[ATOL, RTOL]`` or ``{atol = ..., rtol = ...}`` -> ``(atol, rtol)``."""
    if isinstance(value, dict):
        if set(value) != {"atol", "rtol"}:
            given = ", ".join(map(str, value)) or "none"
            raise InteropError(f"{what} must have exactly the keys atol and rtol, got {given}")
        return number(value["atol"], f"{what}.atol"), number(value["rtol"], f"{what}.rtol")
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return number(value[0], f"{what}[0]"), number(value[1], f"{what}[1]")
    raise InteropError(f"{what} must be [ATOL, RTOL] or {{atol = ..., rtol = ...}}, got {_describe(value)}")


class ConfigError(InteropError):
    """A value of a TOML configuration breaks its schema (exit 2).

    ``file`` is the TOML file and ``path`` the key that is wrong, as names and array
    indices (``("tool", "interop", "suite", "models", 2, "to")``), so a caller holding
    the text can point at the line.
    """

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None, *, file: Path | None = None,
                 path: tuple[str | int, ...] = ()):
        super().__init__(message, hint)
        self.file = file
        self.path = path


# The [tool.interop.check] schema, walked by _walk: a dict is a table of known keys (and, under
# OTHER_KEYS, the node for every other key), ("each", node) a table whose keys are the user's names,
# ("list", node) an array of tables, and a callable converts a leaf (raising InteropError).
_Node = Any
#: In a dict node: the node that checks every key the dict does not name.
OTHER_KEYS: Any = type("OtherKeys", (), {"__repr__": lambda self: "OTHER_KEYS"})()
_TOLERANCE_PAIR: _Node = lambda value, what: _pair(value, what, _toml_number)  # noqa: E731
def check_error_stat(value: Any, what: str) -> str:
    """One of :data:`~interop.checker.metrics.ERROR_STATS`, else exit 2 naming ``what``."""
    if not isinstance(value, str) or value not in ERROR_STATS:
        raise InteropError(f"{what} must be one of {', '.join(ERROR_STATS)}, got {_describe(value)}")
    return value


def parse_error_stat_option(text: str) -> tuple[str | None, str]:
    """``"max"`` -> ``(None, "max")`` (every output); ``"logits=p99"`` -> ``("logits", "p99")``."""
    name, sep, stat = text.rpartition("=")
    if sep and not name.strip():
        raise InteropError(f"--check-error-stat {text!r} is not STAT or NAME=STAT",
                           hint=f"for example --check-error-stat logits=max; statistics: {', '.join(ERROR_STATS)}")
    return (name.strip() or None), check_error_stat(stat.strip(), f"--check-error-stat {text!r}")


CHECK_SCHEMA: dict[str, _Node] = {
    "atol": _toml_number,
    "rtol": _toml_number,
    "error_stat": check_error_stat,
    "tolerances": ("each", _TOLERANCE_PAIR),
    "precision": {name: {"atol": _toml_number, "rtol": _toml_number} for name in PRECISION_DEFAULTS},
}


def _key(parent: str, name: str) -> str:
    """A dotted TOML key, quoting names that are not bare keys (``tolerances."out.1"``)."""
    bare = bool(name) and all(ch.isalnum() or ch in "-_" for ch in name) and name.isascii()
    part = name if bare else '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{parent}.{part}" if parent else part


def _walk(node: _Node, value: Any, key: str, where: Path, path: tuple[str | int, ...] = ()) -> Any:
    """Check ``value`` against the schema ``node``; every error names the file and the dotted key.

    Errors are :class:`ConfigError` carrying ``path`` (the key as names and indices).
    """
    if callable(node):
        try:
            return node(value, f"{where}: {key}")
        except ConfigError:
            raise
        except InteropError as exc:
            raise ConfigError(exc.message, exc.hint, file=where, path=path) from None
    if isinstance(node, tuple) and node[0] == "list":  # an array of tables: [[key]]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: {key} must be an array of tables, got {_describe(value)}",
                              hint=f"write each item as a [[{key}]] section", file=where, path=path)
        return [_walk(node[1], item, f"{key}[{index}]", where, (*path, index))
                for index, item in enumerate(value)]
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {key} must be a table, got {_describe(value)}",
                          hint=f"write it as a [{key}] section", file=where, path=path)
    if isinstance(node, tuple):  # ("each", child): any key, each value checked against child
        return {name: _walk(node[1], item, _key(key, name), where, (*path, name)) for name, item in value.items()}
    known = [name for name in node if name is not OTHER_KEYS]
    unknown = sorted(set(value) - set(known))
    if unknown and OTHER_KEYS not in node:
        raise ConfigError(
            f"{where}: {key}: unknown key {', '.join(unknown)}",
            hint=f"known keys: {', '.join(known)}", file=where, path=(*path, unknown[0]),
        )
    return {name: _walk(node[name] if name in known else node[OTHER_KEYS], item, _key(key, name), where,
                        (*path, name)) for name, item in value.items()}


def walk_config(schema: _Node, value: Any, key: str, where: Path, path: tuple[str | int, ...] = ()) -> Any:
    """Validate and convert ``value`` (the table at dotted ``key`` of the TOML file ``where``).

    The schema is the one ``[tool.interop.check]`` uses (see :data:`CHECK_SCHEMA`);
    ``path`` is where ``value`` sits in the file, for :class:`ConfigError`.
    """
    return _walk(schema, value, key, where, path)


def table_at(document: dict[str, Any], dotted: tuple[str, ...], where: Path) -> Any:
    """``document[a][b][c]`` where every level but the last must be a table (None when absent)."""
    value: Any = document
    for depth, name in enumerate(dotted):
        if name not in value:
            return None
        value = value[name]
        if depth < len(dotted) - 1 and not isinstance(value, dict):
            key = ".".join(dotted[:depth + 1])
            raise ConfigError(f"{where}: {key} must be a table, got {_describe(value)}",
                              hint=f"write it as a [{key}] section", file=where, path=dotted[:depth + 1])
    return value


def load_project_settings(path: Path | None) -> ProjectSettings:
    """Read ``[tool.interop.check]`` from ``path``; unknown keys and wrong types are errors (exit 2)."""
    if path is None:
        return ProjectSettings()
    table = table_at(load_toml(path), ("tool", "interop", "check"), path)
    if table is None:
        return ProjectSettings()
    checked = _walk(CHECK_SCHEMA, table, "tool.interop.check", path, ("tool", "interop", "check"))
    settings = ProjectSettings(path=path)
    settings.atol = checked.get("atol")
    settings.rtol = checked.get("rtol")
    settings.per_output = dict(checked.get("tolerances", {}))
    settings.error_stat = checked.get("error_stat")
    for precision, values in checked.get("precision", {}).items():
        settings.per_precision[precision] = (values.get("atol"), values.get("rtol"))
    return settings


def build_settings(
    atol: float | None = None,
    rtol: float | None = None,
    tolerances: dict[str, tuple[float, float]] | list[str] | None = None,
    project: bool | Path | str = True,
    error_stats: str | list[str] | dict[str, str] | None = None,
) -> ToleranceSettings:
    """Tolerance settings from API/CLI values; ``project`` True finds pyproject.toml from the CWD.

    ``error_stats`` is a statistic for every output (``"max"``), a list of ``--check-error-stat``
    values (``["scaled", "logits=max"]``) or a mapping ``{output: statistic}``.
    """
    per_output: dict[str, tuple[float, float]] = {}
    if isinstance(tolerances, dict):
        for name, value in tolerances.items():
            per_output[name] = _pair(value, f"tolerance {name}")
    else:
        for text in tolerances or []:
            name, value = parse_tolerance_option(text)
            per_output[name] = value
    if project is True:
        project_path = find_pyproject()
    elif project is False or project is None:
        project_path = None
    else:
        project_path = Path(project)
    stat: str | None = None
    per_output_stat: dict[str, str] = {}
    if isinstance(error_stats, dict):
        per_output_stat = {name: check_error_stat(value, f"error statistic of {name}")
                           for name, value in error_stats.items()}
    else:
        for text in [error_stats] if isinstance(error_stats, str) else list(error_stats or []):
            name, value = parse_error_stat_option(text)
            if name is None:
                stat = value
            else:
                per_output_stat[name] = value
    return ToleranceSettings(
        stat=stat,
        per_output_stat=per_output_stat,
        atol=None if atol is None else _non_negative(atol, "--atol"),
        rtol=None if rtol is None else _non_negative(rtol, "--rtol"),
        per_output=per_output,
        project=load_project_settings(project_path),
    )
