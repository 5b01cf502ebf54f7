"""Converter options are declared once, by the plugin: `interop convert` makes its flags from them.

A stranger's plugin (a dist-info folder on PYTHONPATH) declares options of every
type; nothing in the core names them, yet they appear in `convert --help`, reach
the converter parsed and checked, and bad values fail before anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from interop.plugin_api import (
    Converter,
    InteropError,
    Option,
    PluginDeclarationError,
    option_values,
)

OPTPLUG = '''
from interop.plugin_api import Converter, Format, Option, Plugin

plugin = Plugin(
    name="optplug", api_version=1,
    formats=(Format(name="optfmt", extensions=(".optm",)),),
    converters=(Converter(
        source="optfmt", target="onnx", impl="optplug_convert:convert",
        options=(
            Option("scale_factor", "int", 2, "how much to scale", minimum=1, maximum=8),
            Option("fast_path", "bool", True, "take the fast path"),
            Option("mode", "str", "a", "which mode", ("a", "b")),
            Option("force", "bool", False, "a name whose flag interop's convert already uses"),
        ),
    ),),
)
'''
CONVERT = '''
import json
import onnx
from onnx import TensorProto, helper

def convert(src, dst, options):
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.doc_string = json.dumps(dict(options), sort_keys=True)  # what the converter received
    onnx.save(model, str(dst))
'''


@pytest.fixture
def site(tmp_path: Path, fake_install: Any) -> Path:
    return fake_install(tmp_path / "site", "interop-optplug", {"optplug": "optplug:plugin"},
                        {"optplug": OPTPLUG, "optplug_convert": CONVERT})


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "m.optm"
    path.write_text("a model of the test format\n")
    return path


def _received(path: Path) -> dict[str, Any]:
    import onnx

    return json.loads(onnx.load(str(path)).doc_string)


def test_help_lists_a_strangers_options_per_converter(tmp_path: Path, site: Path, run_cli: Any) -> None:
    done = run_cli("convert", "--help", cwd=tmp_path, pythonpath=site)
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())  # click wraps long lines
    assert "Options of the optfmt -> onnx converter (plugin optplug)" in text
    assert "--scale-factor INTEGER how much to scale [default: 2; at least 1; at most 8]" in text
    assert "--fast-path / --no-fast-path take the fast path [default: True]" in text
    assert "--mode [a|b] which mode [default: a]" in text
    # --force is convert's own flag: the plugin's option is reachable with -O only, and says so.
    assert "-O force=VALUE" in text
    # The core's options name no framework; the built-in Core ML options come from its plugin.
    core_part = text.split("Options of the")[0]
    assert "Core ML" not in core_part and "--precision" not in core_part
    assert "Options of the onnx -> coreml converter (plugin coreml)" in text


def test_help_options_of_one_format(tmp_path: Path, site: Path, run_cli: Any) -> None:
    done = run_cli("convert", "--help-options", "optfmt", cwd=tmp_path, pythonpath=site)
    assert done.returncode == 0, done.stderr
    assert "--scale-factor" in done.stdout and "--precision" not in done.stdout
    by_extension = run_cli("convert", "--help-options", "x.optm", cwd=tmp_path, pythonpath=site)
    assert by_extension.stdout == done.stdout
    unknown = run_cli("convert", "--help-options", "nosuchformat", cwd=tmp_path, pythonpath=site)
    assert unknown.returncode == 2 and "unknown format 'nosuchformat'" in unknown.stderr


def test_flags_reach_the_converter_parsed_and_defaults_filled(
    tmp_path: Path, site: Path, model: Path, run_cli: Any,
) -> None:
    out = tmp_path / "given.onnx"
    done = run_cli("convert", str(model), "-o", str(out), "--scale-factor", "3", "--no-fast-path",
                   "-O", "force=yes", cwd=tmp_path, pythonpath=site)
    assert done.returncode == 0, done.stderr
    assert _received(out) == {"scale_factor": 3, "fast_path": False, "mode": "a", "force": True}
    plain = tmp_path / "plain.onnx"
    assert run_cli("convert", str(model), "-o", str(plain), cwd=tmp_path, pythonpath=site).returncode == 0
    assert _received(plain) == {"scale_factor": 2, "fast_path": True, "mode": "a", "force": False}


@pytest.mark.parametrize("args, needle", [
    (["--scale-factor", "0"], "option scale_factor must be at least 1, got 0"),
    (["--scale-factor", "three"], "option scale_factor expects an integer, got 'three'"),
    (["--mode", "c"], "option mode must be one of a, b, got 'c'"),
    (["--scale-factor", "3", "-O", "scale_factor=4"], "option scale_factor is given twice"),
    (["-O", "colour=blue"], "option colour is not understood by any converter on the route optfmt -> onnx"),
])
def test_bad_values_fail_before_anything_is_written(
    tmp_path: Path, site: Path, model: Path, run_cli: Any, args: list[str], needle: str,
) -> None:
    out = tmp_path / "bad.onnx"
    done = run_cli("convert", str(model), "-o", str(out), *args, cwd=tmp_path, pythonpath=site)
    assert done.returncode == 2, done.stderr
    assert needle in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()


def test_option_values_checks_typed_values_like_the_command_line() -> None:
    declared = (Option("n", "int", 1, minimum=1), Option("on", "bool", False), Option("x", "float", 0.5))
    assert option_values(declared, {"n": "4", "on": "no", "x": "2"}) == {"n": 4, "on": False, "x": 2.0}
    assert option_values(declared, {"n": 3, "on": True, "x": None}) == {"n": 3, "on": True, "x": 0.5}
    for bad in ({"n": True}, {"n": 2.5}, {"n": 0}, {"on": "maybe"}, {"x": "1e"}, {"other": 1}):
        with pytest.raises(InteropError):
            option_values(declared, bad)


@pytest.mark.parametrize("option, needle", [
    (Option("Bad-Name"), "option name 'Bad-Name' is invalid"),
    (Option("n", "integer"), "type 'integer' is not one of"),
    (Option("n", "int", "ten"), "default is invalid"),
    (Option("n", "str", minimum=1), "minimum/maximum apply to int and float options only"),
    (Option("n", "int", 5, choices=("a",)), "choice 'a' is not of type int"),
])
def test_malformed_options_are_declaration_errors(option: Option, needle: str) -> None:
    with pytest.raises(PluginDeclarationError, match="converter a->b: ") as info:
        Converter("a", "b", "m:f", options=(option,)).validate()
    assert needle in info.value.message


def test_an_option_declared_twice_by_one_converter_is_an_error() -> None:
    with pytest.raises(PluginDeclarationError, match="declared twice"):
        Converter("a", "b", "m:f", options=(Option("n"), Option("n"))).validate()
