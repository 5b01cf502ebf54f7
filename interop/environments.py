"""Running a plugin's converters, runtimes and trainers in a separate Python environment.

Some frameworks cannot be installed next to the others (MXNet 1.9 needs numpy < 1.24).
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
holding it (the way git finds ``.git``); a bare command name is searched on PATH.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

import interop.plugin_api as api
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
    here = Path.cwd()
    for folder in (here, *here.parents):
        candidate = folder / declared
        if candidate.exists():
            return candidate
    return None


def environment_status(env: Environment) -> tuple[bool, str]:
    """Whether the environment's interpreter exists; if not, the reason and how to create it."""
    python = python_path(env)
    if python is not None:
        return True, ""
    variable = env_variable(env)
    where = (
        f"under ${variable}={os.environ[variable]}" if os.environ.get(variable)
        else f"in {Path.cwd()} or its parents (or set {variable} to the folder holding it)"
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


@contextmanager
def _shared_packages(impl: str) -> Iterator[Path]:
    """A temporary folder linking interop and the implementation's top package, for PYTHONPATH.

    Linking only these two (instead of putting the host's site-packages on the path)
    keeps the host's numpy and frameworks out of the environment.
    """
    folder = Path(tempfile.mkdtemp(prefix="interop-env-path-"))
    try:
        links = {"interop": Path(api.__file__).resolve().parent}
        top = impl.partition(":")[0].split(".")[0]
        found = _package_dir(top)
        if found is not None and top != "interop":
            links[found.name] = found.resolve()
        for name, target in links.items():
            (folder / name).symlink_to(target, target_is_directory=target.is_dir())
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output on stderr)"


_ERROR_TYPES: dict[str, type[InteropError]] = {
    name: getattr(api, name)
    for name in ("InteropError", "ModelLoadError", "UnsupportedModelError", "ConversionError",
                 "PluginDeclarationError")
}


def _call_worker(
    env: Environment, impl: str, request: dict[str, Any], workdir: Path,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run one request in the environment's worker and return its JSON response.

    Failures become InteropError subclasses: the worker's own InteropError keeps its
    type and message; a crash becomes ConversionError with the last stderr line.
    """
    python = python_path(env)
    if python is None:
        raise InteropError(environment_status(env)[1])
    request_file = workdir / "request.json"
    response_file = workdir / "response.json"
    request_file.write_text(json.dumps({**request, "impl": impl, "response": str(response_file)}))
    stderr_file = workdir / "stderr.txt"
    what = f"{request['action']} with {impl} in environment {env.name!r}"
    with _shared_packages(impl) as shared, open(stderr_file, "w+") as stderr:
        child_env = {**os.environ, "PYTHONPATH": str(shared), "PYTHONNOUSERSITE": "1",
                     "PYTHONUNBUFFERED": "1"}
        child_env.pop("PYTHONHOME", None)
        proc = subprocess.Popen(
            [str(python), "-m", "interop.worker", str(request_file)],
            stdout=subprocess.PIPE, stderr=stderr, env=child_env, text=True, cwd=workdir,
        )
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(env.timeout, kill)
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:  # live progress (epochs) while the worker runs
                if line.startswith(EVENT_PREFIX) and on_event is not None:
                    on_event(json.loads(line[len(EVENT_PREFIX):]))
            code = proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        stderr.seek(0)
        err_text = stderr.read()
    if timed_out.is_set():
        raise ConversionError(
            f"{what} timed out after {env.timeout:g} s and was stopped",
            hint="raise the environment's timeout or check the model size",
        )
    response = json.loads(response_file.read_text()) if response_file.exists() else None
    if response and "error" in response:
        error = response["error"]
        kind = next((_ERROR_TYPES[b] for b in error.get("bases", []) if b in _ERROR_TYPES), None)
        if kind is not None:
            raise kind(error["message"], hint=error.get("hint"))
        # Framework messages can span many lines (MXNet embeds its C++ trace); keep the last.
        raise ConversionError(
            f"{what} failed: {error.get('type')}: {_last_line(str(error.get('message')))}",
            hint="set INTEROP_DEBUG=1 to see the worker's traceback" if not os.environ.get(
                "INTEROP_DEBUG") else None,
        )
    if code != 0 or response is None:
        if os.environ.get("INTEROP_DEBUG"):
            sys.stderr.write(err_text)
        raise ConversionError(
            f"{what} crashed (exit code {code}): {_last_line(err_text)}",
            hint="set INTEROP_DEBUG=1 to see the worker's stderr",
        )
    return response


def _save_arrays(path: Path, arrays: Mapping[str, np.ndarray]) -> list[str]:
    """Store arrays positionally (names may hold characters a zip member cannot)."""
    names = list(arrays)
    np.savez(path, **{f"a{i}": np.asarray(arrays[n]) for i, n in enumerate(names)})
    return names


def _load_arrays(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as stored:
        return {name: stored[f"a{i}"] for i, name in enumerate(names)}


# --------------------------------------------------------------------------- public calls


def run_converter_in(env: Environment, impl: str, src: Path, dst: Path, options: dict) -> None:
    """Call ``impl(src, dst, options)`` in ``env``; ``options`` must be JSON values."""
    with tempfile.TemporaryDirectory(prefix="interop-env-") as tmp:
        _call_worker(env, impl, {
            "action": "convert", "src": str(Path(src).resolve()),
            "dst": str(Path(dst).resolve()), "options": options,
        }, Path(tmp))


def _spec_from(data: dict[str, Any]) -> TensorSpec:
    return TensorSpec(data["name"], data["dtype"], tuple(data["shape"]))


class EnvironmentSession:
    """A Session whose model lives in another environment: every run is one worker call."""

    def __init__(self, env: Environment, load_impl: str, path: Path, engine: str):
        self._env, self._impl, self._path = env, load_impl, Path(path).resolve()
        with tempfile.TemporaryDirectory(prefix="interop-env-") as tmp:
            info = _call_worker(env, load_impl, {"action": "inspect", "path": str(self._path)},
                                Path(tmp))
        self.engine = engine or info.get("engine", "")
        self.inputs: list[TensorSpec] = [_spec_from(s) for s in info["inputs"]]
        self.outputs: list[TensorSpec] = [_spec_from(s) for s in info["outputs"]]
        self.versions: dict[str, str] = dict(info.get("versions", {}))

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        with tempfile.TemporaryDirectory(prefix="interop-env-") as tmp:
            folder = Path(tmp)
            names = _save_arrays(folder / "feeds.npz", feeds)
            response = _call_worker(self._env, self._impl, {
                "action": "run", "path": str(self._path), "feeds": str(folder / "feeds.npz"),
                "feed_names": names, "outputs": str(folder / "outputs.npz"),
            }, folder)
            return _load_arrays(folder / "outputs.npz", response["output_names"])


def load_runtime_in(env: Environment, load_impl: str, path: Path, engine: str) -> Session:
    """Open ``path`` with ``load_impl`` in ``env``; the returned Session runs there too."""
    return EnvironmentSession(env, load_impl, path, engine)


def run_trainer_in(
    env: Environment, impl: str, dst: Path, data: TrainData, config: TrainConfig,
    on_epoch: EpochCallback,
) -> TrainResult:
    """Call the trainer ``impl`` in ``env``; epochs reach ``on_epoch`` as they finish."""
    arrays = {k: getattr(data, k) for k in ("x_train", "y_train", "x_test", "y_test", "mean", "std")}

    def on_event(event: dict[str, Any]) -> None:
        if event.get("kind") == "epoch":
            on_epoch(int(event["epoch"]), float(event["loss"]), float(event["accuracy"]))

    with tempfile.TemporaryDirectory(prefix="interop-env-") as tmp:
        folder = Path(tmp)
        names = _save_arrays(folder / "data.npz", arrays)
        response = _call_worker(env, impl, {
            "action": "train", "dst": str(Path(dst).resolve()), "data": str(folder / "data.npz"),
            "data_names": names, "class_names": list(data.class_names),
            "feature_names": list(data.feature_names), "config": asdict(config),
        }, folder, on_event)
    return TrainResult(**response["result"])


__all__ = [
    "environment_status", "python_path", "env_variable", "run_converter_in",
    "load_runtime_in", "run_trainer_in", "EnvironmentSession",
]
