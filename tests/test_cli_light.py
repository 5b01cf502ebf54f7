"""The CLI's light paths: help, version and plugin listing import no ML framework."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("tensorflow", "keras", "torch", "coremltools", "onnxruntime", "tf2onnx")

_PROBE = """
import sys, runpy
sys.argv = ["interop", *{args!r}]
try:
    runpy.run_module("interop", run_name="__main__")
except SystemExit as exc:
    code = exc.code
print("HEAVY:" + ",".join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--help"], ["plugins"], ["plugins", "--json"], ["--version"],
                                  ["convert", "--help"], ["train", "--help"]])
def test_light_commands_import_no_framework(args):
    result = subprocess.run(
        [sys.executable, "-c", _PROBE.format(args=args, heavy=HEAVY)],
        capture_output=True, text=True, timeout=120,
    )
    heavy_line = [l for l in result.stderr.splitlines() if l.startswith("HEAVY:")]
    assert heavy_line == ["HEAVY:"], result.stderr


def test_import_interop_is_light():
    code = f"import interop, sys; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_plugins_json_lists_builtins(cli):
    result = cli("plugins", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    by_name = {p["name"]: p for p in info["plugins"]}
    assert {"onnx", "keras", "torch", "coreml"} <= set(by_name)
    for name in ("onnx", "keras", "torch", "coreml"):
        assert by_name[name]["status"] == "ok"
        assert by_name[name]["distribution"] == f"interop-{name}"
        assert by_name[name]["version"]
    converters = {(c["source"], c["target"]) for p in info["plugins"] for c in p["converters"]}
    assert {("keras", "onnx"), ("torch", "onnx"), ("onnx", "coreml")} <= converters
    runtimes = {r["name"]: r for p in info["plugins"] for r in p["runtimes"]}
    assert runtimes["onnxruntime"]["available"] is True
    assert runtimes["coreml-interpreter"]["available"] is True
    if sys.platform != "darwin":
        assert runtimes["coreml"]["available"] is False
        assert "macOS" in runtimes["coreml"]["reason"]


def test_multi_hop_route_is_planned_from_declarations():
    from interop.plugin_registry import get_registry
    from interop.routing import plan_route

    route = plan_route("keras", "coreml", get_registry())
    assert [(p.item.source, p.item.target) for p in route] == [("keras", "onnx"), ("onnx", "coreml")]


def test_api_functions_survive_submodule_imports():
    # Importing the implementation modules must not shadow the API functions of the package.
    import interop
    import interop.checker.runner  # noqa: F401
    import interop.conversion  # noqa: F401
    import interop.training  # noqa: F401

    for name in ("convert", "train", "check", "list_plugins"):
        assert callable(getattr(interop, name)) and not isinstance(getattr(interop, name), type(interop))


def test_the_command_list_matches_each_commands_own_help():
    # `interop --help` lists the commands from a table so that it imports none of them.
    import click

    from interop.cli.main import COMMANDS, cli

    for name, (_, short_help) in COMMANDS.items():
        command = cli.get_command(click.Context(cli), name)
        assert command.get_short_help_str(limit=1000) == short_help, name


def test_help_imports_no_command_module_and_no_numpy():
    code = ("import sys, runpy; sys.argv = ['interop', '--help']\n"
            "try:\n    runpy.run_module('interop', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('interop.cli.') and m != 'interop.cli.main'"
            " or m == 'numpy'), file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stderr.strip().splitlines()[-1] == "[]", out.stderr


@pytest.mark.parametrize("args", [["plugins"], ["plugins", "--json"], ["convert", "--help"]])
def test_plugin_listing_and_convert_help_import_no_numpy(args):
    result = subprocess.run(
        [sys.executable, "-c", _PROBE.format(args=args, heavy=("numpy",))],
        capture_output=True, text=True, timeout=120,
    )
    assert [l for l in result.stderr.splitlines() if l.startswith("HEAVY:")] == ["HEAVY:"], result.stderr
