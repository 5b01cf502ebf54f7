"""Plugins that go wrong: broken imports, a future API version, duplicate declarations.

They are installed beside the real plugins as dist-info folders on PYTHONPATH; the
CLI runs in a subprocess so discovery happens from scratch every time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from interop.plugin_api import PLUGIN_API_VERSION
from interop.training import train

BROKEN = "import module_that_does_not_exist_anywhere\n"
FUTURE = """
from interop.plugin_api import Plugin
plugin = Plugin(name="future", api_version=2)
"""
DUPLICATE = """
from interop.plugin_api import Converter, Format, Plugin
plugin = Plugin(
    name="{name}", api_version=1,
    formats=(Format(name="dupfmt", extensions=(".dupfmt",)),),
    converters=(Converter(source="dupfmt", target="onnx", impl="{name_}:convert"),),
)
"""


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A numpy-mlp model (the example plugin, installed in the project environment)."""
    path = tmp_path_factory.mktemp("model") / "iris.npmlp"
    train("numpy-mlp", path, epochs=2)
    return path


@pytest.fixture
def site(tmp_path: Path, fake_install: Any) -> Path:
    folder = tmp_path / "site"
    fake_install(folder, "interop-broken", {"broken": "broken_plugin:plugin"}, {"broken_plugin": BROKEN})
    fake_install(folder, "interop-future", {"future": "future_plugin:plugin"}, {"future_plugin": FUTURE})
    for name in ("dup-a", "dup-b"):
        module = name.replace("-", "_")
        fake_install(folder, f"interop-{name}", {name: f"{module}:plugin"},
                     {module: DUPLICATE.format(name=name, name_=module)})
    return folder


def test_problems_are_listed_and_named(tmp_path: Path, site: Path, run_cli: Any) -> None:
    listed = run_cli("plugins", "--json", cwd=tmp_path, pythonpath=site)
    assert listed.returncode == 0, listed.stderr
    info = json.loads(listed.stdout)
    by_name = {p["name"]: p for p in info["plugins"]}
    assert by_name["broken"]["status"] == "error"
    assert by_name["broken"]["distribution"] == "interop-broken"
    assert "ModuleNotFoundError" in by_name["broken"]["error"]
    assert "module_that_does_not_exist_anywhere" in by_name["broken"]["error"]
    assert by_name["future"]["status"] == "error"
    major, minor = PLUGIN_API_VERSION
    assert f"written for plugin API 2, this interop provides {major}.{minor}" in by_name["future"]["error"]
    assert by_name["numpy-mlp"]["status"] == "ok"  # the good ones are untouched
    assert info["conflicts"] == [
        "format 'dupfmt' is declared by plugins 'dup-a' and 'dup-b'; "
        "using 'dup-a' (higher priority, then name order)",
        "converter dupfmt -> onnx is declared by plugins 'dup-a' and 'dup-b'; "
        "using 'dup-a' (higher priority, then name order)",
    ]
    text = run_cli("plugins", cwd=tmp_path, pythonpath=site)
    assert "warning: plugin broken (interop-broken 0.1) failed to load: ModuleNotFoundError" in text.stderr
    assert "warning: converter dupfmt -> onnx is declared by plugins 'dup-a' and 'dup-b'" in text.stderr


def test_conversion_works_beside_a_broken_plugin(
    tmp_path: Path, site: Path, trained_model: Path, run_cli: Any
) -> None:
    done = run_cli("convert", str(trained_model), "-o", "iris.onnx", cwd=tmp_path, pythonpath=site)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "iris.onnx").is_file()
    assert "warning: plugin broken (distribution interop-broken 0.1) failed to load and is skipped" in done.stderr


def test_strict_mode_fails_naming_the_broken_plugin(
    tmp_path: Path, site: Path, trained_model: Path, run_cli: Any
) -> None:
    done = run_cli("convert", str(trained_model), "-o", "iris.onnx", cwd=tmp_path, pythonpath=site,
                   INTEROP_STRICT_PLUGINS="1")
    assert done.returncode == 4
    assert done.stderr.startswith(
        "error: plugin broken (distribution interop-broken 0.1) failed to load: ModuleNotFoundError")
    assert "INTEROP_STRICT_PLUGINS" in done.stderr  # the hint says how to get out of strict mode
    assert not (tmp_path / "iris.onnx").exists()


def test_disabled_plugins_are_skipped_without_being_imported(
    tmp_path: Path, site: Path, run_cli: Any
) -> None:
    listed = run_cli("plugins", "--json", cwd=tmp_path, pythonpath=site,
                     INTEROP_DISABLE_PLUGINS="broken, future", INTEROP_STRICT_PLUGINS="1")
    assert listed.returncode == 0, listed.stderr
    by_name = {p["name"]: p for p in json.loads(listed.stdout)["plugins"]}
    assert by_name["broken"]["status"] == "disabled"
    assert by_name["future"]["status"] == "disabled"
    assert "failed to load" not in listed.stderr


FAILING_IMPL = '''
def load(path):
    raise NotImplementedError

def convert(src, dst, options):
    dst.write_bytes(b"half an ONNX file")  # what a library writes before it fails
    raise ValueError("No Op registered for StatefulPartitionedCall with domain_version of 17\\n\\n"
                     "==> Context: Bad node spec for node. Name: block_0/StatefulPartitionedCall")
'''


def test_a_converter_failing_with_a_multi_line_message_is_one_line_and_leaves_no_file(
    tmp_path: Path, fake_install: Any, run_cli: Any
) -> None:
    """onnx's checker puts a "==> Context" paragraph under its message (tf2onnx left an op it cannot
    convert in a Keras ConvNeXt): the error names the first line, and the hint says how to see all."""
    from fake_plugins import one_format_plugin

    site = fake_install(tmp_path / "site", "interop-failing", {"failing": "failing:plugin"},
                        {"failing": one_format_plugin("failing"), "failing_impl": FAILING_IMPL})
    model = tmp_path / "m.failing"
    model.write_text("a model\n")
    done = run_cli("convert", str(model), "-o", "m.onnx", cwd=tmp_path, pythonpath=site)
    assert done.returncode == 4, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith(("error:", "hint:", "==>"))]
    assert lines == [
        "error: converter failing -> onnx (plugin failing) failed on m.failing: ValueError: No Op registered "
        "for StatefulPartitionedCall with domain_version of 17",
        "hint: set INTEROP_DEBUG=1 for the traceback",
    ], done.stderr
    assert not (tmp_path / "m.onnx").exists()
