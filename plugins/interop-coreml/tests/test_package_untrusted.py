"""An untrusted .mlpackage never makes interop read a file outside it (issue 10, section 1).

Every evil package here borrows its model from a real package *outside* it, which
interop converted from ``a.onnx``: following the borrowed path would make
``interop check a.onnx evil.mlpackage`` pass.  Each test runs that check with the real
CLI and asserts it is refused instead (exit 2, one ``error:`` line saying what and why),
and that the outside files were not read: their access times are put before their
modification times, so on a ``relatime`` or ``strictatime`` file system the first read
moves them (a probe confirms the file system does that; with ``noatime`` only the exit
code and the message are checked).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("coremltools")
onnx = pytest.importorskip("onnx")

SPEC_IN_DATA = "com.apple.CoreML/model.mlmodel"
WEIGHTS_IN_DATA = "com.apple.CoreML/weights"


def _write_onnx(path: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array((np.arange(12, dtype=np.float32).reshape(4, 3) - 5) / 7, "w")
    bias = numpy_helper.from_array(np.linspace(-1, 1, 3).astype(np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])],
        "affine",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> dict[str, Path]:
    """``a.onnx`` and a real package converted from it by interop, in a folder of their own."""
    import interop

    folder = tmp_path_factory.mktemp("outside")
    onnx_path = folder / "a.onnx"
    _write_onnx(onnx_path)
    package = folder / "real.mlpackage"
    interop.convert(onnx_path, package)
    weights = package / "Data" / WEIGHTS_IN_DATA
    assert (weights / "weight.bin").is_file(), "the MatMul weight must live in a blob for these tests"
    return {
        "onnx": onnx_path,
        "package": package,
        "manifest": package / "Manifest.json",
        "data": package / "Data",
        "spec": package / "Data" / SPEC_IN_DATA,
        "weights": weights,
        "blob": weights / "weight.bin",
    }


@pytest.fixture(scope="module")
def atime_moves_on_read(tmp_path_factory) -> bool:
    probe = tmp_path_factory.mktemp("atime") / "probe"
    probe.write_bytes(b"x")
    _age_atime(probe)
    before = probe.stat().st_atime_ns
    probe.read_bytes()
    return probe.stat().st_atime_ns != before


def _age_atime(path: Path) -> None:
    st = os.stat(path)
    os.utime(path, ns=(st.st_mtime_ns - 3_600_000_000_000, st.st_mtime_ns))


def _outside_files(real: dict[str, Path]) -> list[Path]:
    return sorted(p for p in real["package"].rglob("*") if p.is_file())


def _check(real: dict[str, Path], evil: Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "INTEROP_DEBUG"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return subprocess.run(
        [sys.executable, "-m", "interop", "check", str(real["onnx"]), str(evil)],
        cwd=cwd or evil.parent, env=env, capture_output=True, text=True, timeout=300,
    )


def _assert_refused_without_reading(real, evil, atime_moves_on_read, *needles, cwd=None) -> str:
    watched = _outside_files(real)
    for path in watched:
        _age_atime(path)
    before = {path: path.stat().st_atime_ns for path in watched}
    result = _check(real, evil, cwd=cwd)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert evil.name in errors[0] and "refused" in errors[0], errors[0]
    for needle in needles:
        assert needle in errors[0], errors[0]
    if atime_moves_on_read:
        read = [str(p) for p in watched if p.stat().st_atime_ns != before[p]]
        assert read == [], f"files outside the package were read: {read}"
    return errors[0]


def _copy(real, tmp_path: Path) -> Path:
    evil = tmp_path / "evil.mlpackage"
    shutil.copytree(real["package"], evil)
    return evil


def _manifest(package: Path) -> dict:
    return json.loads((package / "Manifest.json").read_text())


def _set_item_path(package: Path, name: str, new_path: str) -> None:
    manifest = _manifest(package)
    for entry in manifest["itemInfoEntries"].values():
        if entry["name"] == name:
            entry["path"] = new_path
    (package / "Manifest.json").write_text(json.dumps(manifest))


def _borrowing_package(real, tmp_path: Path, which: str) -> Path:
    """A package whose own copy of ``which`` ("spec" or "weights") is gone; the real one is outside."""
    evil = _copy(real, tmp_path)
    if which == "spec":
        (evil / "Data" / SPEC_IN_DATA).unlink()
    else:
        shutil.rmtree(evil / "Data" / WEIGHTS_IN_DATA)
    return evil


# ------------------------------------------------------------------- the legitimate cases


def test_the_real_package_passes_the_same_check(real):
    """Control: the outside package is a valid copy, so following a reference to it would pass."""
    import interop

    report = interop.check(real["onnx"], [real["package"]])
    assert report.passed, report.to_dict()


def test_a_package_saved_by_coremltools_loads_as_before(tmp_path):
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    from interop_coreml.interpreter import load_program
    from interop_coreml.package import validate_package

    weight = np.linspace(-2, 2, 48, dtype=np.float32).reshape(4, 12)

    @mb.program(input_specs=[mb.TensorSpec(shape=(3, 4))], opset_version=ct.target.iOS16)
    def program(x):
        return mb.matmul(x=x, y=weight, name="y")

    path = tmp_path / "saved.mlpackage"
    ct.convert(program, convert_to="mlprogram", compute_precision=ct.precision.FLOAT32,
               minimum_deployment_target=ct.target.iOS16).save(str(path))
    validated = validate_package(path)
    assert validated.spec_path.is_file() and validated.weights_dir is not None
    assert any(validated.weights_dir.iterdir()), "the weight must be in a blob for the test to mean anything"
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    (result,) = load_program(path).run({"x": x}).values()
    np.testing.assert_allclose(result, x @ weight, rtol=1e-6)


# -------------------------------------------------------------------------- the vectors


@pytest.mark.parametrize("which", ["spec", "weights"])
def test_manifest_path_escaping_with_dotdot(real, tmp_path, atime_moves_on_read, which):
    evil = _borrowing_package(real, tmp_path, which)
    target = real["spec"] if which == "spec" else real["weights"]
    name = "model.mlmodel" if which == "spec" else "weights"
    _set_item_path(evil, name, os.path.relpath(target, evil / "Data"))
    assert (evil / "Data" / os.path.relpath(target, evil / "Data")).exists()  # the path does reach it
    _assert_refused_without_reading(real, evil, atime_moves_on_read, "'..'")


@pytest.mark.parametrize("which", ["spec", "weights"])
def test_manifest_absolute_path(real, tmp_path, atime_moves_on_read, which):
    evil = _borrowing_package(real, tmp_path, which)
    target = real["spec"] if which == "spec" else real["weights"]
    _set_item_path(evil, "model.mlmodel" if which == "spec" else "weights", str(target))
    _assert_refused_without_reading(real, evil, atime_moves_on_read, "absolute path")


def test_symlinked_spec_file(real, tmp_path, atime_moves_on_read):
    evil = _borrowing_package(real, tmp_path, "spec")
    (evil / "Data" / SPEC_IN_DATA).symlink_to(real["spec"])
    _assert_refused_without_reading(real, evil, atime_moves_on_read, "symlink")


@pytest.mark.parametrize("link", ["file", "folder"])
def test_symlinked_weights(real, tmp_path, atime_moves_on_read, link):
    evil = _borrowing_package(real, tmp_path, "weights")
    weights = evil / "Data" / WEIGHTS_IN_DATA
    if link == "file":
        weights.mkdir()
        (weights / "weight.bin").symlink_to(real["blob"])
    else:
        weights.symlink_to(real["weights"], target_is_directory=True)
    _assert_refused_without_reading(real, evil, atime_moves_on_read, "symlink")


def test_symlinked_data_folder(real, tmp_path, atime_moves_on_read):
    evil = _copy(real, tmp_path)
    shutil.rmtree(evil / "Data")
    (evil / "Data").symlink_to(real["data"], target_is_directory=True)
    _assert_refused_without_reading(real, evil, atime_moves_on_read, "Data", "symlink")


def test_symlinked_manifest(real, tmp_path, atime_moves_on_read):
    evil = _copy(real, tmp_path)
    (evil / "Manifest.json").unlink()
    (evil / "Manifest.json").symlink_to(real["manifest"])
    _assert_refused_without_reading(real, evil, atime_moves_on_read, "Manifest.json", "symlink")


def test_unreferenced_symlink_anywhere_in_the_package(real, tmp_path, atime_moves_on_read):
    evil = _copy(real, tmp_path)
    (evil / "Data" / "com.apple.CoreML" / "notes.txt").symlink_to(real["manifest"])
    _assert_refused_without_reading(real, evil, atime_moves_on_read, "notes.txt", "symlink")


def test_fifo_in_the_package_is_refused_without_opening_it(real, tmp_path, atime_moves_on_read):
    """A FIFO whose open would block: the subprocess timeout is the guard if it were opened."""
    evil = _borrowing_package(real, tmp_path, "weights")
    weights = evil / "Data" / WEIGHTS_IN_DATA
    weights.mkdir()
    os.mkfifo(weights / "weight.bin")
    _assert_refused_without_reading(real, evil, atime_moves_on_read, "FIFO")


def _rewrite_blob_paths(spec_file: Path, new_name: str) -> int:
    from coremltools.proto import Model_pb2

    spec = Model_pb2.Model()
    spec.ParseFromString(spec_file.read_bytes())
    changed = 0
    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            for op in block.operations:
                value = op.attributes.get("val") if "val" in op.attributes else None
                if value is not None and value.WhichOneof("value") == "blobFileValue":
                    value.blobFileValue.fileName = new_name
                    changed += 1
    spec_file.write_bytes(spec.SerializeToString())
    return changed


def test_blob_file_path_in_the_spec_pointing_outside(real, tmp_path, atime_moves_on_read):
    """The spec's weight path leaves the package, which has no weights of its own.

    coremltools' loader keeps only the file name and, with no weights folder, reads it
    relative to the current directory: the check runs from the real weights folder, so
    the old code read the outside blob and passed.
    """
    evil = _borrowing_package(real, tmp_path, "weights")
    manifest = _manifest(evil)
    manifest["itemInfoEntries"] = {
        key: entry for key, entry in manifest["itemInfoEntries"].items() if entry["name"] != "weights"
    }
    (evil / "Manifest.json").write_text(json.dumps(manifest))
    outside = os.path.relpath(real["blob"], evil / "Data" / "com.apple.CoreML")
    assert _rewrite_blob_paths(evil / "Data" / SPEC_IN_DATA, f"@model_path/{outside}") >= 1
    _assert_refused_without_reading(real, evil, atime_moves_on_read, "weight file", cwd=real["weights"])


def test_blob_file_path_escaping_is_refused_even_with_weights_inside(real, tmp_path):
    """In process: a '..' or absolute blob path is refused though coremltools would read inside."""
    from interop_coreml.interpreter import ModelFormatError, load_program

    for index, name in enumerate(("@model_path/weights/../../../../etc/passwd", "/etc/passwd")):
        evil = tmp_path / str(index) / "evil.mlpackage"
        shutil.copytree(real["package"], evil)
        assert _rewrite_blob_paths(evil / "Data" / SPEC_IN_DATA, name) >= 1
        with pytest.raises(ModelFormatError, match="refused: the model spec"):
            load_program(evil)


def test_blob_in_a_package_without_weights_is_not_read_from_the_current_directory(real, tmp_path, monkeypatch):
    """The blob is inside (``@model_path/other/weight.bin``) but there is no weights folder.

    coremltools' loader keeps only the file name and joins it to the (empty) weights
    folder, so it would open ``./weight.bin`` in the current directory: the real one.
    """
    from interop_coreml.interpreter import ModelFormatError, load_program

    evil = _borrowing_package(real, tmp_path, "weights")
    manifest = _manifest(evil)
    manifest["itemInfoEntries"] = {
        key: entry for key, entry in manifest["itemInfoEntries"].items() if entry["name"] != "weights"
    }
    (evil / "Manifest.json").write_text(json.dumps(manifest))
    other = evil / "Data" / "com.apple.CoreML" / "other"
    other.mkdir()
    shutil.copyfile(real["blob"], other / "weight.bin")
    assert _rewrite_blob_paths(evil / "Data" / SPEC_IN_DATA, "@model_path/other/weight.bin") >= 1
    monkeypatch.chdir(real["weights"])
    with pytest.raises(ModelFormatError, match="has no weights folder"):
        load_program(evil)


BAD_MANIFESTS = {
    "garbage": ("this is not JSON {", "not valid JSON"),
    "array": ("[1, 2, 3]", "JSON object"),
    "entries-list": ('{"itemInfoEntries": [], "rootModelIdentifier": "a"}', "itemInfoEntries"),
    "path-int": ('{"itemInfoEntries": {"a": {"path": 7}}, "rootModelIdentifier": "a"}', "path"),
    "entry-str": ('{"itemInfoEntries": {"a": "x"}, "rootModelIdentifier": "a"}', "must be an object"),
    "root-list": ('{"itemInfoEntries": {"a": {"path": "x"}}, "rootModelIdentifier": ["a"]}', "rootModelIdentifier"),
    "root-missing": ('{"itemInfoEntries": {"a": {"path": "x"}}, "rootModelIdentifier": "b"}', "names no item"),
    "name-int": ('{"itemInfoEntries": {"a": {"path": "x", "name": 1}}, "rootModelIdentifier": "a"}', "name"),
    "nan": ('{"itemInfoEntries": {"a": {"path": "x", "size": NaN}}, "rootModelIdentifier": "a"}', "NaN"),
    "not-utf8": (b'{"itemInfoEntries": {"a": {"path": "\xff"}}, "rootModelIdentifier": "a"}', "UTF-8"),
}


@pytest.mark.parametrize("case", ["garbage", "entries-list", "path-int", "nan"])
def test_manifest_that_is_not_valid_json_or_has_wrong_types(real, tmp_path, atime_moves_on_read, case):
    text, needle = BAD_MANIFESTS[case]
    evil = _copy(real, tmp_path)
    (evil / "Manifest.json").write_text(text)
    _assert_refused_without_reading(real, evil, atime_moves_on_read, needle)


def test_every_malformed_manifest_is_refused_by_each_reader(real, tmp_path):
    """In process, all cases: the sniff the CLI runs and the interpreter's loader both refuse."""
    from interop_coreml.interpreter import ModelFormatError, load_program
    from interop_coreml.sniff import sniff_mlpackage

    for case, (text, needle) in BAD_MANIFESTS.items():
        evil = tmp_path / case / "evil.mlpackage"
        shutil.copytree(real["package"], evil)
        raw = text if isinstance(text, bytes) else text.encode()
        (evil / "Manifest.json").write_bytes(raw)
        reason = sniff_mlpackage(evil)
        assert reason is not None and reason.startswith("refused") and needle in reason, (case, reason)
        assert "\n" not in reason
        with pytest.raises(ModelFormatError, match="refused"):
            load_program(evil)


def test_manifest_with_a_repeated_key_is_refused(real, tmp_path, atime_moves_on_read):
    """Two readers may take different copies of a repeated key (Python's json keeps the last)."""
    evil = _copy(real, tmp_path)
    manifest = _manifest(evil)
    root_id = manifest["rootModelIdentifier"]
    text = json.dumps(manifest).replace(
        f'"rootModelIdentifier": "{root_id}"', f'"rootModelIdentifier": "elsewhere", "rootModelIdentifier": "{root_id}"'
    )
    assert text.count('"rootModelIdentifier"') == 2
    (evil / "Manifest.json").write_text(text)
    _assert_refused_without_reading(real, evil, atime_moves_on_read, "repeats the key")
