"""Items run in a separate Python environment: files in and out, live epochs, timeouts, errors.

The "separate" environment here is this very interpreter given by absolute path: the
worker still runs as a subprocess with only interop and the plugin on PYTHONPATH,
which is what these tests exercise (the MXNet plugin's tests use a real second env).
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from interop.environments import (
    environment_status, load_runtime_in, python_path, run_converter_in, run_trainer_in,
)
from interop.datasets import iris_train_data
from interop.plugin_api import (
    ConversionError, Environment, InteropError, ModelLoadError, TrainConfig,
)

IMPL = '''
import os, sys, time
from pathlib import Path
import numpy as np
from interop.plugin_api import ModelLoadError, TensorSpec, TrainResult

def copy(src, dst, options):
    print("chatter on stdout must not disturb the protocol")
    Path(dst).write_text(Path(src).read_text() + options["suffix"])

def slow(src, dst, options):
    time.sleep(60)

def crash(src, dst, options):
    sys.stderr.write("about to die\\nfatal: the framework aborted\\n")
    sys.stderr.flush()
    os._exit(3)

def refuse(src, dst, options):
    raise ModelLoadError(f"{src}: this is not a model I know")

def fail(src, dst, options):
    raise RuntimeError("line one\\nthe real reason is here")

class Doubler:
    engine = "doubler"
    inputs = [TensorSpec("x", "float32", (None, 2))]
    outputs = [TensorSpec("y", "float32", (None, 2)), TensorSpec("pid", "int64", ())]
    versions = {"numpy": np.__version__}
    def run(self, feeds):
        return {"y": feeds["x"] * 2, "pid": np.array(os.getpid())}

def load(path):
    if not Path(path).exists():
        raise ModelLoadError(f"{path}: missing")
    return Doubler()

def train(dst, data, config, on_epoch):
    for epoch in range(1, config.epochs + 1):
        print("epoch noise")
        on_epoch(epoch, 1.0 / epoch, 0.5 + epoch / 100)
    Path(dst).write_text(str(data.x_train.shape))
    return TrainResult("envy", str(dst), 0.9, 0.8, 1.0 / config.epochs, [])
'''


@pytest.fixture
def impl_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "envy_impl.py").write_text(textwrap.dedent(IMPL))
    monkeypatch.syspath_prepend(str(folder))  # the host finds it; the worker gets a link
    return "envy_impl"


ENV = Environment(name="same", python=sys.executable, timeout=60.0)


def test_converter_runs_in_the_environment(tmp_path: Path, impl_module: str) -> None:
    src, dst = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_text("model")
    run_converter_in(ENV, f"{impl_module}:copy", src, dst, {"suffix": "+converted"})
    assert dst.read_text() == "model+converted"


def test_timeout_stops_the_worker(tmp_path: Path, impl_module: str) -> None:
    quick = Environment(name="same", python=sys.executable, timeout=3.0)
    (tmp_path / "in.txt").write_text("model")
    with pytest.raises(ConversionError, match=r"convert with envy_impl:slow in environment 'same' "
                                              r"timed out after 3 s and was stopped"):
        run_converter_in(quick, f"{impl_module}:slow", tmp_path / "in.txt", tmp_path / "out", {})


def test_crash_reports_exit_code_and_last_stderr_line(tmp_path: Path, impl_module: str) -> None:
    (tmp_path / "in.txt").write_text("model")
    with pytest.raises(ConversionError) as caught:
        run_converter_in(ENV, f"{impl_module}:crash", tmp_path / "in.txt", tmp_path / "out", {})
    assert caught.value.message.endswith("crashed (exit code 3): fatal: the framework aborted")


def test_errors_keep_their_type_or_become_one_line(tmp_path: Path, impl_module: str) -> None:
    (tmp_path / "in.txt").write_text("model")
    with pytest.raises(ModelLoadError, match="this is not a model I know"):
        run_converter_in(ENV, f"{impl_module}:refuse", tmp_path / "in.txt", tmp_path / "out", {})
    with pytest.raises(ConversionError) as caught:
        run_converter_in(ENV, f"{impl_module}:fail", tmp_path / "in.txt", tmp_path / "out", {})
    assert caught.value.message.endswith("failed: RuntimeError: the real reason is here")


def test_session_is_served_by_one_worker(tmp_path: Path, impl_module: str) -> None:
    model = tmp_path / "model.bin"
    model.write_text("weights")
    session = load_runtime_in(ENV, f"{impl_module}:load", model, engine="doubler (env)")
    try:
        assert session.engine == "doubler (env)"
        assert [s.name for s in session.inputs] == ["x"]
        assert session.versions["python"] == sys.version.split()[0]
        x = np.arange(6, dtype=np.float32).reshape(3, 2)
        first, second = session.run({"x": x}), session.run({"x": x + 1})
        np.testing.assert_array_equal(first["y"], x * 2)
        np.testing.assert_array_equal(second["y"], (x + 1) * 2)
        assert int(first["pid"]) == int(second["pid"])  # one worker served both runs
    finally:
        session.close()  # type: ignore[attr-defined]
    with pytest.raises(ModelLoadError, match="missing"):
        load_runtime_in(ENV, f"{impl_module}:load", tmp_path / "absent.bin", engine="doubler")


def test_trainer_streams_epochs_live(tmp_path: Path, impl_module: str) -> None:
    seen: list[tuple[int, float, float]] = []
    result = run_trainer_in(ENV, f"{impl_module}:train", tmp_path / "model.txt", iris_train_data(),
                            TrainConfig(epochs=3), lambda e, loss, acc: seen.append((e, loss, acc)))
    assert [e for e, _, _ in seen] == [1, 2, 3]
    assert seen[1][1] == pytest.approx(0.5)
    assert result.framework == "envy" and result.test_accuracy == 0.8
    assert (tmp_path / "model.txt").read_text() == "(120, 2)"


def test_interpreter_lookup_and_missing_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = Environment(name="my-env.x", python="envs/bin/python", setup_hint="make my-env")
    (tmp_path / "envs" / "bin").mkdir(parents=True)
    (tmp_path / "envs" / "bin" / "python").symlink_to(sys.executable)
    (tmp_path / "deep" / "er").mkdir(parents=True)
    monkeypatch.delenv("INTEROP_ENV_MY_ENV_X", raising=False)
    monkeypatch.chdir(tmp_path / "deep" / "er")
    assert python_path(env) == tmp_path / "envs" / "bin" / "python"  # found in a parent folder
    monkeypatch.setenv("INTEROP_ENV_MY_ENV_X", str(tmp_path / "elsewhere"))
    ok, why = environment_status(env)
    assert not ok
    assert "INTEROP_ENV_MY_ENV_X" in why and why.endswith("create it with: make my-env")
    with pytest.raises(InteropError, match="no interpreter envs/bin/python"):
        run_converter_in(env, "envy_impl:copy", tmp_path / "a", tmp_path / "b", {})
