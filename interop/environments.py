"""Running a plugin's converters, runtimes and trainers in a separate Python environment.

Some frameworks cannot be installed next to the others (an old release pinning an old numpy).
A plugin then declares an :class:`~interop.plugin_api.Environment` and binds items to
it; interop runs those items as a subprocess of the environment's interpreter with
files in and out (a JSON request, ``.npz`` arrays, a JSON response), under the
environment's timeout.

The worker (:mod:`interop.worker`) needs nothing installed in the environment but
numpy and the plugin's framework: interop's own package and the plugin's package
are shared with the subprocess through a temporary directory of symlinks placed on
``PYTHONPATH``, so the worker always speaks the host's protocol version.

Where the interpreter is looked up (``Environment.python`` is usually relative):
an absolute path is used as is; otherwise, when ``INTEROP_ENV_<NAME>`` is set
(``NAME`` upper-cased, ``-`` and ``.`` turned into ``_``), relative to that
directory only; otherwise relative to the current directory or the nearest parent
holding it (the way git finds ``.git``), then to the folders above interop's own
installation (so ``.venv-NAME`` beside the project's ``.venv`` is found from
anywhere); a bare command name is searched on PATH.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import interop.plugin_api as api
from interop.errors import add_sudden_exit_cleanup, remove_sudden_exit_cleanup
from interop.plugin_api import (
    ConversionError,
    Environment,
    EpochCallback,
    InteropError,
    Session,
    TensorSpec,
    TrainConfig,
    TrainData,
    TrainResult,
)

if TYPE_CHECKING:  # numpy is imported when arrays cross over: `interop plugins` asks only for status
    import numpy as np

#: Prefix of the lines the worker writes on stdout to report progress.
EVENT_PREFIX = "@interop-event "


def env_variable(env: Environment) -> str:
    """Name of the variable that relocates ``env``: INTEROP_ENV_<NAME>."""
    return "INTEROP_ENV_" + env.name.upper().replace("-", "_").replace(".", "_")


def python_path(env: Environment) -> Path | None:
    """The interpreter ``env`` designates, or None when it cannot be found."""
    declared = Path(env.python)
    if declared.is_absolute():
        return declared if declared.exists() else None
    base = os.environ.get(env_variable(env))
    if base:
        candidate = Path(base) / declared
        return candidate if candidate.exists() else None
    if len(declared.parts) == 1:
        found = shutil.which(env.python)
        return Path(found) if found else None
    for folder in _search_folders():
        candidate = folder / declared
        if candidate.exists():
            return candidate
    return None


def _search_folders() -> list[Path]:
    """The current folder and its parents, then the folders above interop's installation.

    The second list finds an environment created beside the project's own ``.venv``
    (or beside an editable checkout) when interop runs from another folder.
    """
    here = Path.cwd()
    installed = Path(__file__).resolve().parent
    folders = [here, *here.parents]
    folders += [f for f in installed.parents if f not in folders]
    return folders


def environment_status(env: Environment) -> tuple[bool, str]:
    """Whether the environment's interpreter exists; if not, the reason and how to create it."""
    python = python_path(env)
    if python is not None:
        return True, ""
    variable = env_variable(env)
    where = (
        f"under ${variable}={os.environ[variable]}" if os.environ.get(variable)
        else f"in {Path.cwd()}, interop's installation folder or their parents "
        f"(or set {variable} to the folder holding it)"
    )
    reason = f"environment {env.name!r}: no interpreter {env.python} {where}"
    if env.setup_hint:
        reason += f"; create it with: {env.setup_hint}"
    return False, reason


# --------------------------------------------------------------------- subprocess plumbing


def _package_dir(module: str) -> Path | None:
    """Folder (or single file) of the top-level package of ``module``, found without importing it."""
    top = module.split(".")[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(spec.origin) if spec.origin else None


def _shared_packages(impl: str, folder: Path) -> Path:
    """Fill ``folder`` with links to interop and the implementation's top package (PYTHONPATH).

    Linking only these two (instead of putting the host's site-packages on the path)
    keeps the host's numpy and frameworks out of the environment.
    """
    folder.mkdir(parents=True, exist_ok=True)
    links = {"interop": Path(api.__file__).resolve().parent}
    top = impl.partition(":")[0].split(".")[0]
    found = _package_dir(top)
    if found is not None and top != "interop":
        links[found.name] = found.resolve()
    for name, target in links.items():
        (folder / name).symlink_to(target, target_is_directory=target.is_dir())
    return folder


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output on stderr)"


_ERROR_TYPES: dict[str, type[InteropError]] = {
    name: getattr(api, name)
    for name in ("InteropError", "ModelLoadError", "UnsupportedModelError", "ConversionError",
                 "PluginDeclarationError")
}


class _Worker:
    """One worker subprocess: a request file in, events on stdout, stderr kept in a file.

    Failures become InteropError subclasses: the worker's own InteropError keeps its
    type and message; anything else becomes ConversionError with the last line of
    the message or of stderr; running past ``env.timeout`` kills the worker.
    """

    def __init__(self, env: Environment, impl: str, request: dict[str, Any], serve: bool = False):
        python = python_path(env)
        if python is None:
            raise InteropError(environment_status(env)[1])
        self.env = env
        self.what = f"{request['action']} with {impl} in environment {env.name!r}"
        self.folder = Path(tempfile.mkdtemp(prefix="interop-env-"))
        self.response_file = self.folder / "response.json"
        request_file = self.folder / "request.json"
        request_file.write_text(json.dumps({**request, "impl": impl, "response": str(self.response_file)}))
        shared = _shared_packages(impl, self.folder / "path")
        self.stderr = open(self.folder / "stderr.txt", "w+")
        child_env = {**os.environ, "PYTHONPATH": str(shared), "PYTHONNOUSERSITE": "1",
                     "PYTHONUNBUFFERED": "1"}
        child_env.pop("PYTHONHOME", None)
        try:
            self.proc = subprocess.Popen(
                [str(python), "-m", "interop.worker", str(request_file)],
                stdin=subprocess.PIPE if serve else subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=self.stderr, env=child_env, text=True, cwd=self.folder,
            )
        except OSError as exc:
            self.stderr.close()
            shutil.rmtree(self.folder, ignore_errors=True)
            raise InteropError(
                f"environment {env.name!r}: cannot start {python}: {exc.strerror or exc}",
                hint=env.setup_hint or None,
            ) from None
        self.timed_out = False
        # A signal in plugin code on the main thread ends interop at once (interop.errors); this worker,
        # driven from another thread (the demo's), must not outlive it.
        sudden = functools.partial(_kill_and_remove, self.proc, self.folder)
        add_sudden_exit_cleanup(sudden)
        self._finalizer = weakref.finalize(self, _stop, self.proc, self.stderr, self.folder, sudden)

    def _kill(self) -> None:
        self.timed_out = True
        self.proc.kill()

    def read_until(self, kind: str, on_event: Callable[[dict[str, Any]], None] | None = None,
                   ) -> dict[str, Any] | None:
        """Events up to the first of ``kind`` (returned); None when the worker exits first."""
        timer = threading.Timer(self.env.timeout, self._kill)
        timer.start()
        try:
            assert self.proc.stdout is not None
            for line in iter(self.proc.stdout.readline, ""):
                if not line.startswith(EVENT_PREFIX):
                    continue
                event = json.loads(line[len(EVENT_PREFIX):])
                if event.get("kind") == kind:
                    return event
                if on_event is not None:
                    on_event(event)  # live progress (epochs) while the worker runs
            self.proc.wait()
            return None
        finally:
            timer.cancel()

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.failure()

    def raise_error(self, error: dict[str, Any]) -> None:
        kind = next((_ERROR_TYPES[b] for b in error.get("bases", []) if b in _ERROR_TYPES), None)
        if kind is not None:
            raise kind(error["message"], hint=error.get("hint"))
        # Framework messages can span many lines (a C++ trace embedded in the message); keep the last.
        raise ConversionError(
            f"{self.what} failed: {error.get('type')}: {_last_line(str(error.get('message')))}",
            hint=None if os.environ.get("INTEROP_DEBUG") else
            "set INTEROP_DEBUG=1 to see the worker's traceback",
        )

    def failure(self) -> None:
        """Raise the error that ended the worker (it has exited or is being stopped)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.timed_out:
            raise ConversionError(
                f"{self.what} timed out after {self.env.timeout:g} s and was stopped",
                hint="raise the environment's timeout or check the model size",
            )
        response = self.response()
        if response and "error" in response:
            self.raise_error(response["error"])
        self.stderr.seek(0)
        err_text = self.stderr.read()
        if os.environ.get("INTEROP_DEBUG"):
            sys.stderr.write(err_text)
        raise ConversionError(
            f"{self.what} crashed (exit code {self.proc.returncode}): {_last_line(err_text)}",
            hint="set INTEROP_DEBUG=1 to see the worker's stderr",
        )

    def response(self) -> dict[str, Any] | None:
        if not self.response_file.exists():
            return None
        return json.loads(self.response_file.read_text())

    def finish(self, on_event: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Wait for a one-shot worker and return its response."""
        self.read_until("(none)", on_event)
        response = self.response()
        if self.timed_out or self.proc.returncode != 0 or response is None or "error" in response:
            self.failure()
        assert response is not None
        return response

    def close(self) -> None:
        self._finalizer()


def _kill_and_remove(proc: subprocess.Popen, folder: Path) -> None:
    proc.kill()
    shutil.rmtree(folder, ignore_errors=True)


def _stop(proc: subprocess.Popen, stderr: Any, folder: Path, sudden: Callable[[], None]) -> None:
    """End a worker (closing stdin lets a serving worker exit by itself) and remove its files."""
    remove_sudden_exit_cleanup(sudden)
    if proc.stdin is not None and not proc.stdin.closed:
        try:
            proc.stdin.close()
        except OSError:
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
    stderr.close()
    shutil.rmtree(folder, ignore_errors=True)


def _call_worker(
    env: Environment, impl: str, request: dict[str, Any],
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run one request in a fresh worker and return its JSON response."""
    worker = _Worker(env, impl, request)
    try:
        return worker.finish(on_event)
    finally:
        worker.close()


def _save_arrays(path: Path, arrays: Mapping[str, np.ndarray]) -> list[str]:
    """Store arrays positionally (names may hold characters a zip member cannot)."""
    names = list(arrays)
    import numpy as np

    np.savez(path, **{f"a{i}": np.asarray(arrays[n]) for i, n in enumerate(names)})
    return names


def _load_arrays(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    """Arrays a worker wrote; never unpickled (the worker runs a stranger's model)."""
    try:
        import numpy as np

        with np.load(path, allow_pickle=False) as stored:
            return {name: stored[f"a{i}"] for i, name in enumerate(names)}
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise ConversionError(
            f"the environment's worker sent back {path.name}, which is not a plain .npz of arrays "
            f"(nothing is unpickled): {_last_line(str(exc))}"
        ) from None


# --------------------------------------------------------------------------- public calls


def run_converter_in(env: Environment, impl: str, src: Path, dst: Path, options: dict) -> None:
    """Call ``impl(src, dst, options)`` in ``env``; ``options`` must be JSON values."""
    _call_worker(env, impl, {
        "action": "convert", "src": str(Path(src).resolve()),
        "dst": str(Path(dst).resolve()), "options": options,
    })


def _spec_from(data: dict[str, Any]) -> TensorSpec:
    bounds = data.get("max_shape")
    return TensorSpec(data["name"], data["dtype"], tuple(data["shape"]),
                      None if bounds is None else tuple(bounds))


class EnvironmentSession:
    """A Session whose model lives in another environment.

    One worker loads the model and stays up, serving every :meth:`run` (feeds and
    outputs travel as ``.npz`` files), so a check of many batches pays the
    framework's import once. The worker ends with :meth:`close` or when the
    session is garbage-collected.
    """

    def __init__(self, env: Environment, load_impl: str, path: Path, engine: str):
        self._worker = _Worker(env, load_impl, {"action": "serve", "path": str(Path(path).resolve())},
                               serve=True)
        ready = self._worker.read_until("ready")
        if ready is None:
            self._worker.failure()
        assert ready is not None
        self.engine = engine or ready.get("engine", "")
        self.inputs: list[TensorSpec] = [_spec_from(s) for s in ready["inputs"]]
        self.outputs: list[TensorSpec] = [_spec_from(s) for s in ready["outputs"]]
        self.versions: dict[str, str] = dict(ready.get("versions", {}))
        self._calls = 0

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._calls += 1
        feeds_file = self._worker.folder / f"feeds-{self._calls}.npz"
        outputs_file = self._worker.folder / f"outputs-{self._calls}.npz"
        names = _save_arrays(feeds_file, feeds)
        self._worker.send({"feeds": str(feeds_file), "feed_names": names, "outputs": str(outputs_file)})
        reply = self._worker.read_until("reply")
        if reply is None:
            self._worker.failure()
        assert reply is not None
        if "error" in reply:
            self._worker.raise_error(reply["error"])
        try:
            return _load_arrays(outputs_file, reply["output_names"])
        finally:
            feeds_file.unlink(missing_ok=True)
            outputs_file.unlink(missing_ok=True)

    def close(self) -> None:
        self._worker.close()


def load_runtime_in(env: Environment, load_impl: str, path: Path, engine: str) -> Session:
    """Open ``path`` with ``load_impl`` in ``env``; the returned Session runs there too."""
    return EnvironmentSession(env, load_impl, path, engine)


def run_trainer_in(
    env: Environment, impl: str, dst: Path, data: TrainData, config: TrainConfig,
    on_epoch: EpochCallback,
) -> TrainResult:
    """Call the trainer ``impl`` in ``env``; epochs reach ``on_epoch`` as they finish."""
    arrays = {k: getattr(data, k) for k in ("x_train", "y_train", "x_test", "y_test", "mean", "std")}
    if data.batch_order is not None:
        arrays["batch_order"] = data.batch_order

    def on_event(event: dict[str, Any]) -> None:
        if event.get("kind") == "epoch":
            on_epoch(int(event["epoch"]), float(event["loss"]), float(event["accuracy"]))

    with tempfile.TemporaryDirectory(prefix="interop-env-data-") as tmp:
        data_file = Path(tmp) / "data.npz"
        names = _save_arrays(data_file, arrays)
        response = _call_worker(env, impl, {
            "action": "train", "dst": str(Path(dst).resolve()), "data": str(data_file),
            "data_names": names, "class_names": list(data.class_names),
            "feature_names": list(data.feature_names), "input_name": data.input_name, "config": asdict(config),
        }, on_event)
    return TrainResult(**response["result"])


__all__ = [
    "environment_status", "python_path", "env_variable", "run_converter_in",
    "load_runtime_in", "run_trainer_in", "EnvironmentSession",
]
