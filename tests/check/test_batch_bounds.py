"""Runtimes that bound dynamic dimensions (Core ML's flexible shapes) declare it; check keeps its runs within."""

from __future__ import annotations

from pathlib import Path

import interop

from .conftest import build_linear_onnx


def test_a_bounded_batch_axis_caps_every_run(tmp_path: Path) -> None:
    source = build_linear_onnx(tmp_path / "linear.onnx")
    copy = tmp_path / "linear.mlpackage"
    interop.convert(source, copy, options={"max_dynamic_dim": 8})
    from interop.plugin_registry import get_registry
    from interop.implementations import open_session

    registry = get_registry()
    opened = open_session(registry.runtimes["coreml-interpreter"], registry, copy)
    assert opened.inputs[0].shape == (None, 4) and opened.inputs[0].max_shape == (8, 4)
    assert opened.inputs[0].max_size(0) == 8 and opened.inputs[0].max_size(1) == 4

    report = interop.check(str(source), [str(copy)], samples=40, project_config=False)
    assert report.passed, report.format_table()
    (runs,) = [group["runs"] for group in report.inputs]
    assert sum(runs) == 40 and max(runs) == 8, runs  # 1, 7, 8, 8, 8, 8: never above the bound
    # Without the bounded copy, the same reference runs in the default, larger batches.
    alone = interop.check(str(source), [str(source)], samples=40, project_config=False)
    assert max(alone.inputs[0]["runs"]) > 8
