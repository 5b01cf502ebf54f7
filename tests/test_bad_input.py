"""Bad input gets one clear line, a documented exit code, no traceback and no output file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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
    # Nothing converts into MXNet: keras -> onnx is as far as a route goes.
    result = cli("convert", str(keras_model), "-o", str(tmp_path / "out.mxnet"))
    _assert_clean_failure(result, 3, "no converter route from keras to mxnet")
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


# ------------------------------------------------------------------ issue 10 §3: exit 2, never exit 4


def _onnx_model(path: Path, shape=(None, 2), opsets=(("", 17),)) -> Path:
    """A one-node ONNX model (Relu on input petal), built with onnx's helpers."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["petal"], ["logits"])], "g",
        [helper.make_tensor_value_info("petal", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, list(shape))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture
def relu_onnx(tmp_path: Path) -> Path:
    return _onnx_model(tmp_path / "relu.onnx")


def _check_refused(cli, tmp_path: Path, model: Path, *args: str, needles=(), cwd: Path | None = None):
    """`interop check MODEL MODEL ARGS --json-file R` must be exit 2 with one line, and write no report."""
    report = tmp_path / "report.json"
    result = cli("check", str(model), str(model), *args, "--json-file", str(report), cwd=cwd)
    _assert_clean_failure(result, 2, *needles)
    assert not report.exists()
    assert not (tmp_path / "interop-check-failures").exists()
    return result


@pytest.mark.parametrize(("toml", "key"), [
    ("[tool.interop]\ncheck = \"strict\"\n", "tool.interop.check must be a table"),
    ("[tool.interop]\ncheck = [1, 2]\n", "tool.interop.check must be a table"),
    ("tool = 3\n", "tool must be a table"),
    ("[tool]\ninterop = \"yes\"\n", "tool.interop must be a table"),
    ("[tool.interop.check]\natol = \"1e-3\"\n", "tool.interop.check.atol must be a number"),
    ("[tool.interop.check]\nrtol = true\n", "tool.interop.check.rtol must be a number"),
    ("[tool.interop.check]\natol = nan\n", "tool.interop.check.atol must be a finite number"),
    ("[tool.interop.check]\nrtol = -0.5\n", "tool.interop.check.rtol must be zero or positive"),
    ("[tool.interop.check]\ntolerances = \"logits\"\n", "tool.interop.check.tolerances must be a table"),
    ("[tool.interop.check.tolerances]\nlogits = [1e-3, \"x\"]\n", "tool.interop.check.tolerances.logits[1]"),
    ("[tool.interop.check.tolerances]\n\"out.1\" = 0.1\n", 'tool.interop.check.tolerances."out.1" must be'),
    ("[tool.interop.check.precision]\nfp16 = 0.1\n", "tool.interop.check.precision.fp16 must be a table"),
    ("[tool.interop.check.precision.fp16]\natol = [1]\n", "tool.interop.check.precision.fp16.atol"),
])
def test_mistyped_project_config(tmp_path, relu_onnx, cli, toml, key):
    (tmp_path / "pyproject.toml").write_text(toml)
    _check_refused(cli, tmp_path, relu_onnx, needles=("pyproject.toml", key), cwd=tmp_path)


def _npz_bytes(**arrays) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _npy_member(shape, descr="<f4") -> bytes:
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def _write_zip(path: Path, members: dict[str, bytes]) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def _bad_inputs(kind: str, folder: Path) -> Path:
    good = _npz_bytes(petal=np.random.default_rng(0).random((10, 2), dtype=np.float32))
    path = folder / f"{kind}.npz"
    if kind == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif kind == "corrupt":  # one flipped byte inside the array: the zip's CRC catches it
        damaged = bytearray(good)
        damaged[good.index(b"\x93NUMPY") + 150] ^= 0xFF
        path.write_bytes(bytes(damaged))
    elif kind == "not-npz":
        _write_zip(path, {"readme.txt": b"hello"})
    elif kind == "huge-header":  # declares 10^6 x 10^6 floats (4 TB) in a few bytes
        _write_zip(path, {"petal.npy": _npy_member((10**6, 10**6)) + b"\0" * 64})
    elif kind == "objects":
        path.write_bytes(_npz_bytes(petal=np.array([{}, 1], dtype=object)))
    elif kind == "strings":
        path.write_bytes(_npz_bytes(petal=np.array([["a", "b"]])))
    elif kind == "shape":
        path.write_bytes(_npz_bytes(petal=np.zeros((3, 5), np.float32)))
    elif kind == "names":
        path.write_bytes(_npz_bytes(x=np.zeros((3, 2), np.float32)))
    return path


@pytest.mark.parametrize(("kind", "needle"), [
    ("truncated", "not a readable .npz"),
    ("corrupt", "not a readable .npz"),
    ("not-npz", "not an .npz of arrays"),
    ("huge-header", "more than the"),
    ("objects", "Python objects"),
    ("strings", "the model expects float32"),
    ("shape", "the model expects (?, 2)"),
    ("names", "missing petal"),
])
def test_bad_inputs_file(tmp_path, relu_onnx, cli, kind, needle):
    path = _bad_inputs(kind, tmp_path)
    _check_refused(cli, tmp_path, relu_onnx, "--inputs", str(path), needles=(path.name, needle))


@pytest.mark.parametrize("kind", ["truncated", "description"])
def test_bad_golden_file(tmp_path, relu_onnx, cli, kind):
    golden = tmp_path / "golden.npz"
    saved = cli("check", str(relu_onnx), "--save-golden", str(golden), "-q")
    assert saved.returncode == 0, saved.stderr
    if kind == "truncated":
        golden.write_bytes(golden.read_bytes()[:-40])
        needle = "not a readable .npz"
    else:  # a description whose runs are not sizes
        arrays = dict(np.load(golden))
        arrays["__interop_check__"] = np.array('{"runs": "abc"}')
        golden.write_bytes(_npz_bytes(**arrays))
        needle = "runs must be a list of positive integers"
    report = tmp_path / "report.json"
    result = cli("check", "--golden", str(golden), str(relu_onnx), "--json-file", str(report))
    _assert_clean_failure(result, 2, "golden.npz", needle)
    assert not report.exists()


@pytest.mark.parametrize(("args", "needle"), [
    (("--range", "0,inf"), "must be finite"),
    (("--range", "nan,1"), "must be finite"),
    (("--range", "1,0"), "LOW must be smaller than HIGH"),
    (("--range", "a,b"), "is not LOW,HIGH"),
    (("--range", "-1e308,1e308"), "too wide"),
    (("--samples", "-3"), "--samples must be at least 1"),
    (("--samples", "0"), "--samples must be at least 1"),
    (("--dataset", "iris", "--samples", "-3"), "--samples must be at least 1"),
    (("--batch-sizes", "0,1"), "must be positive integers"),
    (("--batch-sizes", "1,x"), "are not integers"),
    (("--max-batch", "0"), "--max-batch must be a positive integer"),
    (("--seed", "-1"), "--seed must be a non-negative integer"),
    (("--atol", "nan"), "--atol must be a finite number"),
    (("--tolerance", "logits=-1,0"), "zero or positive"),
])
def test_bad_sampling_options(tmp_path, relu_onnx, cli, args, needle):
    _check_refused(cli, tmp_path, relu_onnx, *args, needles=(needle,))


def test_huge_declared_input_is_refused_before_allocating(tmp_path, cli):
    huge = _onnx_model(tmp_path / "huge.onnx", shape=(None, 10**9, 10**9))
    result = _check_refused(cli, tmp_path, huge, needles=("petal 72x1000000000x1000000000", "more than the"))
    assert "--samples" in result.stderr and "--max-batch" in result.stderr  # the hint says what to lower


def test_huge_sample_count_is_refused_before_allocating(tmp_path, relu_onnx, cli):
    _check_refused(cli, tmp_path, relu_onnx, "--samples", str(10**12), needles=("TiB", "more than the"))


def test_input_limit_is_adjustable(tmp_path, relu_onnx, cli):
    # 72 float32 samples of 2 values (plus the float64 draw) exceed a 100-byte limit.
    result = cli("check", str(relu_onnx), str(relu_onnx), env={"INTEROP_MAX_INPUT_BYTES": "100"})
    _assert_clean_failure(result, 2, "more than the 100 bytes limit")
    assert cli("check", str(relu_onnx), str(relu_onnx), "-q").returncode == 0


@pytest.mark.parametrize("opsets", [(("", 99),), (("", 17), ("ai.onnx.ml", 99))], ids=["ai.onnx", "ai.onnx.ml"])
def test_opset_newer_than_onnx_knows(tmp_path, cli, opsets):
    model = _onnx_model(tmp_path / "future.onnx", opsets=opsets)
    domain = opsets[-1][0] or "ai.onnx"
    result = cli("convert", str(model), "-o", str(tmp_path / "out.mlpackage"))
    _assert_clean_failure(result, 2, "future.onnx", f"{domain} opset 99", "newer than the installed onnx")
    assert _leftovers(tmp_path, {"future.onnx"}) == []
    _check_refused(cli, tmp_path, model, needles=(f"{domain} opset 99",))


def test_opset_the_installed_onnx_knows_is_accepted(tmp_path, cli):
    import onnx.defs

    model = _onnx_model(tmp_path / "current.onnx", opsets=(("", onnx.defs.onnx_opset_version()),))
    result = cli("check", str(model), str(model), "-q")
    assert result.returncode == 0, result.stderr


def test_a_library_error_becomes_one_line_with_its_own_message(capsys):
    # The shape of TensorFlow's error when a layer cannot be traced: a header, traceback-like frames,
    # colour codes, then the exception's type and message, then more text.
    from interop.errors import exception_line, print_error

    class OperatorNotAllowedInGraphError(Exception):
        pass

    text = ("in user code:\n\n    File \"/x/loading.py\", line 81, in keras_fn  *\n        result = model(args)\n\n"
            "    OperatorNotAllowedInGraphError: Exception encountered when calling UpSampling2D.call().\n    \n"
            "    \x1b[1mUsing a symbolic `tf.Tensor` as a Python `bool` is not allowed.\x1b[0m\n")
    error = OperatorNotAllowedInGraphError(text)
    assert exception_line(error) == ("OperatorNotAllowedInGraphError: "
                                     "Exception encountered when calling UpSampling2D.call().")
    assert exception_line(ValueError("\x1b[31mbad\x1b[0m value\nmore")) == "ValueError: bad value"
    assert exception_line(AssertionError()) == "AssertionError"
    assert print_error(error) == 4
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == ("error: internal error: OperatorNotAllowedInGraphError: "
                        "Exception encountered when calling UpSampling2D.call().") and len(lines) == 2
