"""interop never destroys what it did not write, and an interrupted run leaves nothing behind.

Report paths that are folders, links or devices, an output that is the source (or
inside it), a folder in the output's place that interop did not write, a link as
``-o``; then SIGINT and SIGTERM sent to real conversions at several moments.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_assertions import assert_refused

import interop
from interop.plugin_api import InteropError


def _tiny_onnx(path: Path) -> Path:
    """y = relu(x) + 1 for x of shape (N, 2): a valid model every converter and runtime takes."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    one = numpy_helper.from_array(np.ones((1, 2), np.float32), "one")
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["r", "one"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        [one],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """``interop ARGS...`` in-process (the refusals happen before any framework loads)."""
    monkeypatch.delenv("INTEROP_DEBUG", raising=False)

    def run(*args: object) -> subprocess.CompletedProcess:
        from interop.cli.main import main

        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(args, int(exit_info.value.code or 0), captured.out, captured.err)

    return run


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_onnx(tmp_path_factory.mktemp("tiny") / "tiny.onnx")


@pytest.fixture(scope="module")
def long_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid model whose conversion to Core ML takes seconds (1,000 Mul+Sin pairs: about 9 s here).

    The signal tests interrupt at most 1 s after the run's temporary folder appears; a model that
    converts in far longer than that is what makes "the run was still going" true by construction
    rather than by the machine's speed (the 2-node model converts in under a second).
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, weights, previous = [], [], "x"
    for i in range(1000):
        weights.append(numpy_helper.from_array(np.full((1, 8), 0.5 + i * 1e-3, np.float32), f"w{i}"))
        nodes += [helper.make_node("Mul", [previous, f"w{i}"], [f"m{i}"]),
                  helper.make_node("Sin", [f"m{i}"], [f"s{i}"])]
        previous = f"s{i}"
    graph = helper.make_graph(nodes, "long", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                              [helper.make_tensor_value_info(previous, TensorProto.FLOAT, ["N", 8])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("long") / "long.onnx"
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def tiny_mlpackage(tiny: Path) -> Path:
    import interop

    path = tiny.parent / "tiny.mlpackage"
    interop.convert(tiny, path)
    return path


# ----------------------------------------------------------------------------- report paths


@pytest.mark.parametrize("option", ["--json-file", "--junit", "--save-golden"])
def test_report_path_that_is_a_folder_is_exit_2_before_any_model_is_opened(tmp_path, tiny, option, cli):
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    (folder / "sub").mkdir()
    (folder / "sub" / "deep.txt").write_text("mine too")
    before = _tree(folder)
    # The candidate does not exist: were models opened first, the error would be about it.
    result = cli("check", str(tiny), str(tmp_path / "missing.onnx"), option, str(folder))
    assert_refused(result, option, "is a directory")
    assert _tree(folder) == before


@pytest.mark.parametrize("option", ["--json-file", "--junit", "--save-golden"])
def test_report_path_that_is_a_link_is_refused_and_the_target_kept(tmp_path, tiny, option, cli):
    target = tmp_path / "precious.txt"
    target.write_text("precious")
    link = tmp_path / "report.out"
    link.symlink_to(target)
    result = cli("check", str(tiny), str(tmp_path / "missing.onnx"), option, str(link))
    assert_refused(result, "symbolic link")
    assert link.is_symlink() and target.read_text() == "precious"


def test_report_paths_that_would_overwrite_a_checked_model_are_refused(tmp_path, tiny_mlpackage, tiny, cli):
    before = tiny.read_bytes()
    assert_refused(cli("check", str(tiny), f"{tiny}@onnxruntime", "--json-file", str(tiny)), "input")
    assert tiny.read_bytes() == before
    inside = tiny_mlpackage / "report.xml"
    assert_refused(cli("check", str(tiny), str(tiny_mlpackage), "--junit", str(inside)), "inside")
    assert not inside.exists()
    both = tmp_path / "r.out"
    assert_refused(cli("check", str(tiny), str(tiny), "--json-file", str(both), "--junit", str(both)),
                    "same file")
    assert not both.exists()


def test_report_in_a_missing_folder_is_still_written(tmp_path, tiny, cli):
    report = tmp_path / "ci" / "out" / "check.json"
    result = cli("check", str(tiny), str(tiny), "--json-file", str(report))
    assert result.returncode == 0, result.stderr
    assert '"passed": true' in report.read_text()


def test_golden_write_refuses_a_folder_and_check_save_path_fails_fast(tmp_path):
    import numpy as np

    from interop.checker import golden

    folder = tmp_path / "golden.npz"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    with pytest.raises(InteropError, match="is a directory") as info:
        golden.check_save_path(folder)
    assert info.value.exit_code == 2
    data = golden.GoldenData({"x": np.zeros((1, 2), np.float32)}, {"y": np.zeros((1, 2), np.float32)})
    with pytest.raises(InteropError, match="is a directory"):
        golden.write(folder, data)
    assert (folder / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["golden.npz"]


# ----------------------------------------------------------------------------- -o and the source


def test_output_that_is_the_source_is_exit_2_and_the_source_is_kept(tmp_path, tiny, cli):
    src = tmp_path / "m.onnx"
    src.write_bytes(tiny.read_bytes())
    before = src.read_bytes()
    assert_refused(cli("convert", str(src), "-o", str(src), "--to", "coreml", "--force"), "input")
    assert src.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


@pytest.mark.parametrize("link", ["symlink", "hardlink", "dotted"])
def test_output_that_is_the_source_under_another_name_is_refused(tmp_path, tiny, link):
    import interop

    src = tmp_path / "m.onnx"
    src.write_bytes(tiny.read_bytes())
    if link == "symlink":  # a link in the folder path: -o goes through it to the source
        (tmp_path / "alias").symlink_to(tmp_path)
        dst = tmp_path / "alias" / "m.onnx"
    elif link == "hardlink":
        dst = tmp_path / "same.onnx"
        os.link(src, dst)
    else:
        dst = tmp_path / "sub" / ".." / "m.onnx"
        (tmp_path / "sub").mkdir()
    with pytest.raises(InteropError, match="input") as info:
        interop.convert(src, dst, to="coreml", force=True)
    assert info.value.exit_code == 2
    assert src.read_bytes() == tiny.read_bytes()


def test_output_inside_a_directory_source_is_refused(tiny_mlpackage):
    import interop

    before = _tree(tiny_mlpackage)
    with pytest.raises(InteropError, match="inside the input") as info:
        interop.convert(tiny_mlpackage, tiny_mlpackage / "Data" / "copy.onnx", to="onnx")
    assert info.value.exit_code == 2
    assert _tree(tiny_mlpackage) == before


@pytest.mark.parametrize("dangling", [False, True])
def test_output_that_is_a_link_is_exit_2_and_the_link_and_its_target_are_kept(tmp_path, tiny, dangling, cli):
    target = tmp_path / "elsewhere.mlpackage"
    if not dangling:
        target.mkdir()
        (target / "Manifest.json").write_text("{}")
    link = tmp_path / "out.mlpackage"
    link.symlink_to(target)
    result = cli("convert", str(tiny), "-o", str(link), "--force")
    assert_refused(result, "symbolic link")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.exists() != dangling
    if not dangling:
        assert _tree(target) == {"Manifest.json": b"{}"}
    assert not list(tmp_path.glob(".*interop-tmp"))


# ----------------------------------------------------------------------------- directories at -o


def test_force_never_replaces_a_folder_that_is_not_a_model_of_the_target_format(tmp_path, tiny, cli):
    folder = tmp_path / "work.mlpackage"
    folder.mkdir()
    (folder / "thesis.tex").write_text("three years")
    assert_refused(cli("convert", str(tiny), "-o", str(folder), "--force"), "did not write")
    assert _tree(folder) == {"thesis.tex": b"three years"}
    keras_dir = tmp_path / "model.onnx"  # a folder where a file output goes
    keras_dir.mkdir()
    (keras_dir / "saved_model.pb").write_bytes(b"x")
    assert_refused(cli("convert", str(tiny), "-o", str(keras_dir), "--to", "coreml", "--force"),
                    "did not write")
    assert _tree(keras_dir) == {"saved_model.pb": b"x"}


def test_force_replaces_a_package_interop_wrote_but_not_one_holding_foreign_files(tmp_path, tiny, tiny_mlpackage):
    import shutil

    import interop

    dst = tmp_path / "out.mlpackage"
    shutil.copytree(tiny_mlpackage, dst)
    (dst / "Data" / "stale.bin").write_bytes(b"old")  # inside the package's own layout
    interop.convert(tiny, dst, force=True)
    assert not (dst / "Data" / "stale.bin").exists()
    assert sorted(_tree(dst)) == sorted(_tree(tiny_mlpackage))  # a fresh package (its ids are random)

    (dst / "notes.txt").write_text("mine")  # a top-level entry no package of interop's has
    with pytest.raises(InteropError, match="did not write") as info:
        interop.convert(tiny, dst, force=True)
    assert info.value.exit_code == 2
    assert (dst / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mlpackage"]


def test_remove_path_never_deletes_a_folder(tmp_path):
    from interop.output_files import remove_path

    folder = tmp_path / "m.onnx.unverified.json"
    folder.mkdir()
    (folder / "keep").write_text("x")
    with pytest.raises(InteropError, match="directory"):
        remove_path(folder)
    assert (folder / "keep").exists()


# ----------------------------------------------------------------------------- signals


def _as_at_a_terminal() -> None:
    """In the child: SIGINT and SIGTERM at their defaults, as for a command typed at a terminal.

    A job started in the background by a non-interactive shell (CI runners often start
    the suite so) inherits SIGINT *ignored*; interop, like Python itself, then keeps
    ignoring it, and Ctrl-C could not be tested.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _start_convert(src: Path, dst: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "INTEROP_DEBUG"}
    return subprocess.Popen([sys.executable, "-m", "interop", "convert", str(src), "-o", str(dst)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_as_at_a_terminal)


def _wait_for_scratch(proc: subprocess.Popen, folder: Path, timeout: float = 120) -> None:
    """Until the conversion's temporary folder exists (the run is past start-up, into the hops)."""
    deadline = time.monotonic() + timeout
    while not list(folder.glob(".*.interop-tmp")):
        assert proc.poll() is None, f"the conversion ended before it started writing: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "no temporary folder appeared"
        time.sleep(0.02)


def _wait_for_handlers(proc: subprocess.Popen, timeout: float = 60) -> None:
    """Until interop's own handlers are installed (SIGTERM caught), i.e. interop's code runs.

    Before that the interpreter is still starting up: Python's default Ctrl-C behaviour
    applies there, and nothing has been written yet.
    """
    status = Path(f"/proc/{proc.pid}/status")
    if not status.exists():
        time.sleep(2.0)
        return
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, proc.stderr.read()
        caught = next((line.split()[1] for line in status.read_text().splitlines()
                       if line.startswith("SigCgt:")), "0")
        if int(caught, 16) & (1 << (signal.SIGTERM - 1)):
            return
        assert time.monotonic() < deadline, "interop never installed its signal handlers"
        time.sleep(0.01)


def _interrupt(src: Path, dst: Path, signum: int, after_start: float | None, after_scratch: float | None):
    proc = _start_convert(src, dst)
    try:
        if after_start is not None:
            _wait_for_handlers(proc)
            time.sleep(after_start)
        else:
            _wait_for_scratch(proc, dst.parent)
            time.sleep(after_scratch or 0.0)
        assert proc.poll() is None, "the conversion finished before the signal: the test proves nothing"
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, stderr


# Moments: 0 and 0.3 s after interop starts (plugin discovery, planning), and 0 and 1.0 s after the
# temporary folder appears: the converter's imports (coremltools imports TensorFlow inside a bare
# `except:`, which used to swallow the interrupt and let the run finish with exit 0).
MOMENTS = [(0.0, None), (0.3, None), (None, 0.0), (None, 1.0)]


@pytest.mark.parametrize("after_start,after_scratch", MOMENTS)
def test_ctrl_c_early_in_onnx_to_coreml_is_exit_130_and_leaves_nothing(tmp_path, long_onnx, after_start,
                                                                        after_scratch):
    src = tmp_path / "m.onnx"
    src.write_bytes(long_onnx.read_bytes())
    code, stderr = _interrupt(src, tmp_path / "m.mlpackage", signal.SIGINT, after_start, after_scratch)
    assert code == 130, stderr
    assert "error: interrupted" in stderr and "Traceback" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


@pytest.mark.parametrize("after_start,after_scratch", [(0.3, None), (None, 0.0), (None, 1.0)])
def test_ctrl_c_early_in_torch_to_onnx_is_exit_130_and_leaves_nothing(
    tmp_path, torch_model, after_start, after_scratch,
):
    src = tmp_path / "m.pt2"
    src.write_bytes(torch_model.read_bytes())
    code, stderr = _interrupt(src, tmp_path / "m.onnx", signal.SIGINT, after_start, after_scratch)
    assert code == 130, stderr
    assert "Traceback" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt2"]


@pytest.mark.parametrize("route", ["onnx-to-coreml", "torch-to-onnx"])
def test_sigterm_mid_conversion_removes_the_temporary_folder_and_exits_143(tmp_path, long_onnx, torch_model,
                                                                            route):
    if route == "onnx-to-coreml":
        src, dst = tmp_path / "m.onnx", tmp_path / "m.mlpackage"
        src.write_bytes(long_onnx.read_bytes())
    else:
        src, dst = tmp_path / "m.pt2", tmp_path / "m.onnx"
        src.write_bytes(torch_model.read_bytes())
    code, stderr = _interrupt(src, dst, signal.SIGTERM, None, 0.5)
    assert code == 143, stderr
    assert "error: terminated" in stderr and "Traceback" not in stderr
    assert not dst.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name]


@pytest.mark.parametrize(("options", "needle"), [
    ({"save_golden": "."}, "is a directory"),
    ({"save_failures": "existing-file"}, "is not a folder"),
    ({"seed": -1}, "--seed"),
    ({"samples": 0}, "--samples"),
    ({"max_batch": 0}, "--max-batch"),
])
def test_api_check_options_fail_before_any_model_is_opened(tmp_path, monkeypatch, options, needle):
    """The models named here do not exist: the option error must come first."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "existing-file").write_text("kept\n")
    with pytest.raises(InteropError, match=needle) as info:
        interop.check(tmp_path / "missing.onnx", [tmp_path / "missing-too.onnx"], **options)
    assert info.value.exit_code == 2
    assert (tmp_path / "existing-file").read_text() == "kept\n"
