"""Which tolerance applies to an output: precision defaults, project settings, command-line overrides.

An element passes when ``|c - r| <= atol + rtol * |r|``. For each output the
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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interop.plugin_api import InteropError

#: Built-in (atol, rtol) per compute precision. A pair takes the lower precision of its two models.
PRECISION_DEFAULTS: dict[str, tuple[float, float]] = {
    "fp64": (1e-9, 1e-7),
    "fp32": (1e-5, 1e-4),
    "fp16": (1e-2, 1e-2),
    "bf16": (5e-2, 5e-2),
}
#: From the most to the least precise.
PRECISION_ORDER = ("fp64", "fp32", "fp16", "bf16")


def lower_precision(first: str, second: str) -> str:
    """The less precise of two precision names (unknown names count as fp32)."""
    rank = {name: index for index, name in enumerate(PRECISION_ORDER)}
    return max(first, second, key=lambda p: rank.get(p, rank["fp32"]))


@dataclass(frozen=True)
class Tolerance:
    """The tolerance applied to one output, and where each number came from."""

    atol: float
    rtol: float
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"atol": self.atol, "rtol": self.rtol, "source": self.source}


@dataclass
class ProjectSettings:
    """The ``[tool.interop.check]`` table of a pyproject.toml (empty when there is none)."""

    path: Path | None = None
    atol: float | None = None
    rtol: float | None = None
    per_output: dict[str, tuple[float, float]] = field(default_factory=dict)
    per_precision: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)


@dataclass
class ToleranceSettings:
    """Everything that can set a tolerance; :meth:`resolve` applies the precedence."""

    atol: float | None = None
    rtol: float | None = None
    per_output: dict[str, tuple[float, float]] = field(default_factory=dict)
    project: ProjectSettings = field(default_factory=ProjectSettings)

    def resolve(self, output: str, precision: str, exact: bool = False) -> Tolerance:
        """The tolerance for ``output`` of a pair computing in ``precision``."""
        if output in self.per_output:
            atol, rtol = self.per_output[output]
            return Tolerance(atol, rtol, f"--tolerance {output}")
        if output in self.project.per_output:
            atol, rtol = self.project.per_output[output]
            return Tolerance(atol, rtol, f"{self._project_name()} tolerances.{output}")
        if exact:
            return Tolerance(0.0, 0.0, "exact (integer or boolean output)")
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
        return Tolerance(atol, rtol, source)

    def _project_name(self) -> str:
        return f"{self.project.path}" if self.project.path else "pyproject.toml"

    def to_dict(self) -> dict[str, Any]:
        return {
            "defaults": {p: {"atol": a, "rtol": r} for p, (a, r) in PRECISION_DEFAULTS.items()},
            "atol": self.atol,
            "rtol": self.rtol,
            "per_output": {k: {"atol": a, "rtol": r} for k, (a, r) in self.per_output.items()},
            "project": None if self.project.path is None else {
                "path": str(self.project.path),
                "atol": self.project.atol,
                "rtol": self.project.rtol,
                "per_output": {k: {"atol": a, "rtol": r} for k, (a, r) in self.project.per_output.items()},
                "per_precision": {
                    k: {"atol": a, "rtol": r} for k, (a, r) in self.project.per_precision.items()
                },
            },
        }


# --------------------------------------------------------------------------- parsing


def _non_negative(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InteropError(f"{what} must be a number, got {value!r}") from None
    if not number >= 0.0:  # also rejects NaN
        raise InteropError(f"{what} must be zero or positive, got {value!r}")
    return number


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


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise InteropError(
                f"cannot read {path}: Python 3.10 needs the tomli package",
                hint="pip install tomli, or run with --no-project-config",
            ) from None
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InteropError(f"cannot read {path}: {exc}") from None


def _pair(value: Any, what: str) -> tuple[float, float]:
    if isinstance(value, dict):
        unknown = set(value) - {"atol", "rtol"}
        if unknown or set(value) != {"atol", "rtol"}:
            raise InteropError(f"{what} must have exactly the keys atol and rtol")
        return _non_negative(value["atol"], f"{what}.atol"), _non_negative(value["rtol"], f"{what}.rtol")
    if isinstance(value, list) and len(value) == 2:
        return _non_negative(value[0], f"{what}[0]"), _non_negative(value[1], f"{what}[1]")
    raise InteropError(f"{what} must be [ATOL, RTOL] or {{atol = ..., rtol = ...}}, got {value!r}")


def load_project_settings(path: Path | None) -> ProjectSettings:
    """Read ``[tool.interop.check]`` from ``path``; unknown keys are errors (they are typos)."""
    if path is None:
        return ProjectSettings()
    table = _load_toml(path).get("tool", {}).get("interop", {}).get("check")
    if table is None:
        return ProjectSettings()
    where = f"{path} [tool.interop.check]"
    if not isinstance(table, dict):
        raise InteropError(f"{where} must be a table")
    unknown = sorted(set(table) - {"atol", "rtol", "tolerances", "precision"})
    if unknown:
        raise InteropError(
            f"{where}: unknown key {', '.join(unknown)}",
            hint="known keys: atol, rtol, tolerances, precision",
        )
    settings = ProjectSettings(path=path)
    if "atol" in table:
        settings.atol = _non_negative(table["atol"], f"{where} atol")
    if "rtol" in table:
        settings.rtol = _non_negative(table["rtol"], f"{where} rtol")
    for name, value in dict(table.get("tolerances", {})).items():
        settings.per_output[name] = _pair(value, f"{where} tolerances.{name}")
    for precision, value in dict(table.get("precision", {})).items():
        if precision not in PRECISION_DEFAULTS or not isinstance(value, dict):
            raise InteropError(
                f"{where} precision.{precision}: expected a table named one of "
                f"{', '.join(PRECISION_DEFAULTS)}"
            )
        bad = set(value) - {"atol", "rtol"}
        if bad:
            raise InteropError(f"{where} precision.{precision}: unknown key {', '.join(sorted(bad))}")
        settings.per_precision[precision] = (
            _non_negative(value["atol"], f"{where} precision.{precision}.atol") if "atol" in value else None,
            _non_negative(value["rtol"], f"{where} precision.{precision}.rtol") if "rtol" in value else None,
        )
    return settings


def build_settings(
    atol: float | None = None,
    rtol: float | None = None,
    tolerances: dict[str, tuple[float, float]] | list[str] | None = None,
    project: bool | Path | str = True,
) -> ToleranceSettings:
    """Tolerance settings from API/CLI values; ``project`` True finds pyproject.toml from the CWD."""
    per_output: dict[str, tuple[float, float]] = {}
    if isinstance(tolerances, dict):
        for name, value in tolerances.items():
            per_output[name] = _pair(list(value), f"tolerance {name}")
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
    return ToleranceSettings(
        atol=None if atol is None else _non_negative(atol, "--atol"),
        rtol=None if rtol is None else _non_negative(rtol, "--rtol"),
        per_output=per_output,
        project=load_project_settings(project_path),
    )
