"""Meta-tests that keep the documentation honest about the code."""

from __future__ import annotations

import dataclasses
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
