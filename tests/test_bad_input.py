"""Bad input gets one clear line, a documented exit code, no traceback and no output file."""

from __future__ import annotations

from pathlib import Path

import pytest


def _assert_clean_failure(result, code: int, *needles: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, result.stderr
    for needle in needles:
        assert needle in error_lines[0], error_lines[0]


def _leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_missing_source(tmp_path, cli):
    result = cli("convert", str(tmp_path / "nope.onnx"), "-o", str(tmp_path / "out.mlpackage"))
    _assert_clean_failure(result, 2, "no such file")
    assert _leftovers(tmp_path, set()) == []


def test_unknown_format(tmp_path, cli):
    src = tmp_path / "model.xyz"
    src.write_bytes(b"\x00\x01")
    result = cli("convert", str(src), "-o", str(tmp_path / "out.onnx"))
    _assert_clean_failure(result, 2, "no installed plugin recognises")
    assert _leftovers(tmp_path, {"model.xyz"}) == []


def test_unknown_target_extension(tmp_path, keras_model, cli):
    result = cli("convert", str(keras_model), "-o", str(tmp_path / "out.weird"))
    _assert_clean_failure(result, 2, "cannot tell the target format")
    assert _leftovers(tmp_path, set()) == []


@pytest.mark.parametrize("content", [b"", b"this is not a protobuf at all\n"])
def test_corrupt_onnx(tmp_path, cli, content):
    src = tmp_path / "broken.onnx"
    src.write_bytes(content)
    result = cli("convert", str(src), "-o", str(tmp_path / "out.mlpackage"))
    _assert_clean_failure(result, 2, "broken.onnx")
    assert _leftovers(tmp_path, {"broken.onnx"}) == []


def test_truncated_onnx(tmp_path, keras_onnx, cli):
    src = tmp_path / "truncated.onnx"
    src.write_bytes(keras_onnx.read_bytes()[: keras_onnx.stat().st_size // 2])
    result = cli("convert", str(src), "-o", str(tmp_path / "out.mlpackage"))
    _assert_clean_failure(result, 2, "truncated.onnx")
    assert _leftovers(tmp_path, {"truncated.onnx"}) == []


def test_text_file_named_keras(tmp_path, cli):
    src = tmp_path / "model.keras"
    src.write_text("just some text\n")
    result = cli("convert", str(src), "-o", str(tmp_path / "out.onnx"))
    _assert_clean_failure(result, 2, "not a valid keras model")
    assert _leftovers(tmp_path, {"model.keras"}) == []


def test_empty_pt2(tmp_path, cli):
    src = tmp_path / "model.pt2"
    src.write_bytes(b"")
    result = cli("convert", str(src), "-o", str(tmp_path / "out.onnx"))
    _assert_clean_failure(result, 2, "empty")
    assert _leftovers(tmp_path, {"model.pt2"}) == []


def test_directory_where_a_file_is_expected(tmp_path, cli):
    src = tmp_path / "model.onnx"
    src.mkdir()
    result = cli("convert", str(src), "-o", str(tmp_path / "out.mlpackage"))
    _assert_clean_failure(result, 2, "directory")
    assert _leftovers(tmp_path, {"model.onnx"}) == []


def test_unwritable_output_folder(torch_model, cli):
    # /sys refuses new files even to root, so this holds whoever runs the suite.
    result = cli("convert", str(torch_model), "-o", "/sys/interop-test.onnx")
    _assert_clean_failure(result, 2, "/sys")
    assert not Path("/sys/interop-test.onnx").exists()


def test_missing_output_folder(tmp_path, torch_model, cli):
    result = cli("convert", str(torch_model), "-o", str(tmp_path / "no" / "such" / "out.onnx"))
    _assert_clean_failure(result, 2, "does not exist")


def test_existing_output_needs_force(tmp_path, torch_model, cli):
    dst = tmp_path / "out.onnx"
    dst.write_bytes(b"keep me")
    result = cli("convert", str(torch_model), "-o", str(dst))
    _assert_clean_failure(result, 2, "already exists")
    assert dst.read_bytes() == b"keep me"
    forced = cli("convert", str(torch_model), "-o", str(dst), "--force")
    assert forced.returncode == 0, forced.stderr
    assert dst.read_bytes()[:1] == b"\x08"  # a real ONNX protobuf now
    assert _leftovers(tmp_path, {"out.onnx"}) == []


def test_no_route_names_what_is_reachable(tmp_path, keras_model, cli):
    result = cli("convert", str(keras_model), "-o", str(tmp_path / "out.pt2"))
    _assert_clean_failure(result, 3, "no converter route from keras to torch")
    assert "onnx" in result.stderr  # reachable formats are listed
    assert _leftovers(tmp_path, set()) == []


def test_unknown_option_is_bad_usage(tmp_path, torch_model, cli):
    result = cli("convert", str(torch_model), "-o", str(tmp_path / "o.onnx"), "-O", "colour=blue")
    _assert_clean_failure(result, 2, "colour")
    assert _leftovers(tmp_path, set()) == []


def test_debug_shows_traceback(tmp_path, cli):
    src = tmp_path / "model.keras"
    src.write_text("text")
    result = cli("convert", str(src), "-o", str(tmp_path / "o.onnx"), env={"INTEROP_DEBUG": "1"})
    assert result.returncode == 2
    assert "Traceback" in result.stderr


def test_failed_conversion_leaves_nothing(tmp_path, cli):
    # A valid ONNX file whose op no Core ML converter supports: exit 3, nothing written.
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("StringNormalizer", ["x"], ["y"])
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("x", TensorProto.STRING, [1])],
        [helper.make_tensor_value_info("y", TensorProto.STRING, [None])],
    )
    src = tmp_path / "strings.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    result = cli("convert", str(src), "-o", str(tmp_path / "out.mlpackage"))
    _assert_clean_failure(result, 3, "StringNormalizer")
    assert _leftovers(tmp_path, {"strings.onnx"}) == []
