"""Meta-tests that keep the documentation honest about the code."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from interop import errors, plugin_api
from interop.cli.main import COMMANDS

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "declaration",
    [plugin_api.Plugin, plugin_api.Format, plugin_api.Converter, plugin_api.Runtime,
     plugin_api.Trainer, plugin_api.Option, plugin_api.Environment],
)
def test_every_declaration_field_is_documented(declaration):
    text = (REPO / "docs" / "plugins.md").read_text()
    assert declaration.__name__ in text
    missing = [f.name for f in dataclasses.fields(declaration) if f"`{f.name}`" not in text]
    assert not missing, f"{declaration.__name__} fields not in docs/plugins.md: {missing}"


def test_every_public_api_name_is_documented():
    text = (REPO / "docs" / "plugins.md").read_text()
    missing = [name for name in plugin_api.__all__ if name not in text]
    assert not missing, missing


def test_readme_names_every_command_and_exit_code():
    text = (REPO / "README.md").read_text()
    for command in COMMANDS:
        assert f"interop {command}" in text, command
    codes = {int(value) for name, value in vars(errors).items() if name.isupper() and isinstance(value, int)}
    table = {int(m) for m in re.findall(r"^\| (\d+) \|", text, flags=re.M)}
    assert codes == table


def test_architecture_lists_every_core_module():
    text = (REPO / "docs" / "architecture.md").read_text()
    modules = [p.stem for p in (REPO / "interop").glob("*.py") if p.stem != "__init__" and p.stem != "__main__"]
    packages = [p.name for p in (REPO / "interop").iterdir() if (p / "__init__.py").exists()]
    missing = [name for name in modules + packages if name not in text]
    assert not missing, f"docs/architecture.md does not mention: {missing}"


def test_every_distribution_and_the_readme_claim_the_same_python():
    # One claim everywhere (issue 15): interop, every built-in plugin, the example and the skeleton.
    files = [REPO / "pyproject.toml", *REPO.glob("plugins/*/pyproject.toml"), *REPO.glob("examples/*/pyproject.toml"),
             REPO / "interop" / "templates" / "plugin" / "pyproject.toml.tmpl"]
    claims = {path.relative_to(REPO).as_posix(): re.search(r'requires-python = "([^"]+)"', path.read_text()).group(1)
              for path in files}
    assert set(claims.values()) == {">=3.11"}, claims
    readme = (REPO / "README.md").read_text()
    assert "Python 3.11+" in readme and "3.10" not in readme
    assert "sys.version_info >= (3, 11)" in (REPO / "Makefile").read_text() or "v >= (3, 11)" in (
        REPO / "Makefile").read_text()


def test_the_architectures_declaration_table_matches_the_plugin_api():
    # docs/architecture.md lists every declaration's fields; a field added, renamed or claimed
    # for the wrong declaration fails here (it once said converters could declare `available`).
    text = (REPO / "docs" / "architecture.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| ((?:`\w+`(?:, )?)+) \|$", text, flags=re.M))
    declarations = [plugin_api.Plugin, plugin_api.Format, plugin_api.Converter, plugin_api.Runtime,
                    plugin_api.Trainer, plugin_api.Option, plugin_api.Environment, plugin_api.TensorSpec]
    assert set(rows) == {d.__name__ for d in declarations}
    for declaration in declarations:
        documented = re.findall(r"`(\w+)`", rows[declaration.__name__])
        assert documented == [f.name for f in dataclasses.fields(declaration)], declaration.__name__


def test_architecture_says_which_plugins_keep_their_tests_beside_them():
    text = (REPO / "docs" / "architecture.md").read_text()
    named = set(re.search(r"kept here for: ([^;]+);", text).group(1).replace(",", " ").split())
    without = {p.name for p in (REPO / "plugins").iterdir() if (p / "pyproject.toml").exists() and not (p / "tests").is_dir()}
    assert named == without


def test_names_once_reused_for_different_things_name_one_thing():
    # Issue 16: `registry.py` named the plugin registry and two importers' op tables, `resolve` an import
    # path, a TOML header and two op lookups. A grep for one of these names finds one thing.
    sources = [p for root in ("interop", "plugins", "examples") for p in (REPO / root).rglob("*.py")
               if "tests" not in p.relative_to(REPO).parts]
    for name in ("registry", "plugin_registry", "layer_table", "module_table", "report", "equivalence", "quiet"):
        found = [p.relative_to(REPO).as_posix() for p in sources if p.stem == name]
        assert len(found) <= 1, found
    assert not [p for p in sources if p.stem == "registry"]
    resolves = [p.relative_to(REPO).as_posix() for p in sources
                if re.search(r"^\s*def resolve\(", p.read_text(), flags=re.M)]
    assert resolves == ["interop/plugin_api.py"], resolves


#: `grep -rniE "$FRAMEWORK_NAMES" interop/ --include=*.py` (issue 16: the core knows no framework).
FRAMEWORK_NAMES = r"coreml|core ml|mlpackage|tensorflow|keras|torch|onnxruntime|tf2onnx|mxnet"
#: The core's data tables, the only modules that may name a framework (docs/architecture.md).
DATA_TABLES = {"interop/builtin_plugins.py", "interop/demo/lineup.py"}


def test_the_core_names_no_framework_outside_its_data_tables():
    pattern = re.compile(FRAMEWORK_NAMES, flags=re.I)
    found: dict[str, list[str]] = {}
    for path in sorted((REPO / "interop").rglob("*.py")):
        name = path.relative_to(REPO).as_posix()
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                found.setdefault(name, []).append(f"{number}: {line.strip()}")
    outside = {name: lines for name, lines in found.items() if name not in DATA_TABLES}
    assert not outside, "framework names outside the data tables (use neutral words or the plugins' " \
                        f"declarations, or move the table):\n{json.dumps(outside, indent=1)}"
    architecture = (REPO / "docs" / "architecture.md").read_text()
    section = architecture.split("## The core knows no framework", 1)[1].split("\n## ", 1)[0]
    for table in DATA_TABLES:
        text = (REPO / table).read_text()
        assert "data table" in text, f"{table} does not say it is a data table"
        assert f"`{table}`" in section, f"docs/architecture.md does not list {table} as a data table"
        # A table names frameworks as data: it imports none of them.
        assert not re.search(rf"^\s*(import|from)\s+({FRAMEWORK_NAMES})\b", text, flags=re.M | re.I), table
