"""One runtime chooser for check, the demo and the conformance kit: choices, what was passed over, and errors."""

from __future__ import annotations

import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

import interop
from interop.plugin_api import InteropError, UnsupportedModelError
from interop.plugin_registry import get_registry
from interop.runtime_choice import choose_runtime

linux_only = pytest.mark.skipif(sys.platform == "darwin", reason="Apple's Core ML runtime runs on macOS")


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "tiny",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])])
    path = tmp_path_factory.mktemp("choice") / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@linux_only
def test_the_best_available_runtime_is_chosen_and_what_was_passed_over_is_said() -> None:
    choice = choose_runtime("coreml", get_registry())
    assert choice.runtime == "coreml-interpreter" and not choice.requested
    assert [name for name, _ in choice.passed_over] == ["coreml"]
    assert "macOS" in choice.passed_over[0][1]
    assert choice.declared_engine == "coreml (reference interpreter)"


@linux_only
def test_a_requested_runtime_that_cannot_run_here_names_the_one_that_can() -> None:
    with pytest.raises(UnsupportedModelError) as info:
        choose_runtime("coreml", get_registry(), "coreml")
    assert "runtime coreml cannot run here" in info.value.message
    assert "coreml-interpreter" in (info.value.hint or "")
    assert info.value.exit_code == 3


@pytest.mark.parametrize("wanted, message, hint", [
    ("nosuch", "unknown runtime 'nosuch'", "runtimes of onnx models: onnxruntime"),
    ("coreml-interpreter", "runtime coreml-interpreter does not run onnx models", "runtimes of onnx models: onnxruntime"),
])
def test_requests_that_cannot_be_right_are_bad_usage(wanted: str, message: str, hint: str) -> None:
    with pytest.raises(InteropError) as info:
        choose_runtime("onnx", get_registry(), wanted)
    assert info.value.exit_code == 2
    assert message in info.value.message and hint in (info.value.hint or "")


def test_runtime_choices_are_checked_before_any_model_is_loaded(
    tiny_onnx: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import interop.checker.models as models

    def must_not_load(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("a model was loaded before every runtime choice was checked")

    monkeypatch.setattr(models, "open_session", must_not_load)
    with pytest.raises(InteropError, match="unknown runtime 'nosuch'"):
        interop.check(str(tiny_onnx), [str(tiny_onnx), f"{tiny_onnx}@nosuch"])


def test_the_conformance_kit_uses_the_same_choice() -> None:
    from interop.testing.conformance import _first_available_runtime

    registry = get_registry()
    for fmt in registry.formats:
        try:
            expected = choose_runtime(fmt, registry).runtime
        except UnsupportedModelError:
            expected = None
        found = _first_available_runtime(fmt, registry)
        assert (found.item.name if found else None) == expected, fmt


def test_a_malformed_runtime_pair_is_hinted_with_an_installed_runtime_that_runs_here() -> None:
    import re

    from interop.checker.models import parse_runtime_overrides
    from interop.plugin_registry import availability

    with pytest.raises(InteropError) as error:
        parse_runtime_overrides(["onnxruntime"])
    registry = get_registry()
    fmt, name = re.search(r"--runtime (\S+)=(\S+)", error.value.hint or "").groups()
    assert fmt in registry.runtimes[name].item.formats
    assert availability(registry.runtimes[name], registry)[0]
