"""The conventions every command follows: where results, progress, JSON and the libraries' chatter go.

A stranger's plugin whose converter is noisy the way frameworks are (C++ lines on
file descriptor 2, a Python warning, a logging record) shows that the chatter is
kept off the terminal by default, shown with -v, kept with --log-file, and that
-q, --json and --json-file mean the same on convert, train and plugins.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from fake_plugins import IMPL_HELPERS, one_format_plugin

NOISY_IMPL = IMPL_HELPERS + '''
import logging, os, warnings

def load(path):
    os.write(2, b"NOISY C++ LINE from the library\\n")
    return Session("noisy (numpy)")

def _own_handler_logger():
    # Like torch: a library imported while the command runs makes its own handler on sys.stderr.
    logger = logging.getLogger("noisylib.own")
    if not logger.handlers:
        logger.addHandler(logging.StreamHandler())
        logger.propagate = False
    return logger

def convert(src, dst, options):
    os.write(2, b"NOISY C++ LINE from the library\\n")
    warnings.warn("NOISY python warning from the library")
    logging.getLogger("noisylib").warning("NOISY logging record from the library")
    _own_handler_logger().warning("NOISY own-handler record from the library")
    import sys
    print("NOISY print to sys.stderr from the library", file=sys.stderr)  # torch prints partial graphs so
    write_identity_onnx(dst)
'''
NOISE = ("NOISY C++ LINE", "NOISY python warning", "NOISY logging record", "NOISY own-handler record",
         "NOISY print to sys.stderr")


@pytest.fixture
def site(tmp_path: Path, fake_install: Any) -> Path:
    return fake_install(tmp_path / "site", "interop-noisy", {"noisy": "noisy:plugin"},
                        {"noisy": one_format_plugin("noisy"), "noisy_impl": NOISY_IMPL})


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "m.noisy"
    path.write_text("noisy model\n")
    return path


def _noise(text: str) -> list[str]:
    return [marker for marker in NOISE if marker in text]


def test_chatter_is_hidden_shown_with_v_and_kept_with_log_file(
    tmp_path: Path, site: Path, model: Path, run_cli: Any,
) -> None:
    plain = run_cli("convert", str(model), "-o", str(tmp_path / "a.onnx"), cwd=tmp_path, pythonpath=site)
    assert plain.returncode == 0, plain.stderr
    assert _noise(plain.stdout + plain.stderr) == []
    assert plain.stdout.strip().startswith("wrote ") and "noisy -> onnx with plugin noisy" in plain.stderr

    verbose = run_cli("convert", str(model), "-o", str(tmp_path / "b.onnx"), "-v", cwd=tmp_path, pythonpath=site)
    assert verbose.returncode == 0 and _noise(verbose.stderr) == list(NOISE), verbose.stderr

    log = tmp_path / "logs" / "libraries.log"
    kept = run_cli("convert", str(model), "-o", str(tmp_path / "c.onnx"), "--log-file", str(log),
                   cwd=tmp_path, pythonpath=site)
    assert kept.returncode == 0 and _noise(kept.stdout + kept.stderr) == []
    assert _noise(log.read_text()) == list(NOISE)


@pytest.mark.parametrize("command", [["check", "m.noisy", "m.noisy"]])
def test_commands_printing_their_own_way_share_v_and_log_file(
    tmp_path: Path, site: Path, model: Path, run_cli: Any, command: list[str],
) -> None:
    plain = run_cli(*command, cwd=tmp_path, pythonpath=site)
    assert plain.returncode == 0, plain.stderr
    assert "NOISY C++ LINE" not in plain.stdout + plain.stderr
    assert "NOISY C++ LINE" in run_cli(*command, "-v", cwd=tmp_path, pythonpath=site).stderr
    log = tmp_path / "check.log"
    kept = run_cli(*command, "--log-file", str(log), cwd=tmp_path, pythonpath=site)
    assert kept.returncode == 0 and "NOISY C++ LINE" in log.read_text()
    refused = run_cli(*command, "--log-file", "m.noisy", cwd=tmp_path, pythonpath=site)
    assert refused.returncode == 2 and model.read_text() == "noisy model\n"


def test_quiet_json_and_json_file(tmp_path: Path, site: Path, model: Path, run_cli: Any) -> None:
    quiet = run_cli("convert", str(model), "-o", str(tmp_path / "q.onnx"), "-q", cwd=tmp_path, pythonpath=site)
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout.startswith("wrote ")

    as_json = run_cli("convert", str(model), "-o", str(tmp_path / "j.onnx"), "--json", cwd=tmp_path,
                      pythonpath=site)
    document = json.loads(as_json.stdout)  # stdout holds the document alone
    assert document["route"] == ["noisy", "onnx"] and document["destination"].endswith("j.onnx")
    assert document["hops"][0]["output"].endswith("j.onnx") and "seconds" in document["hops"][0]
    assert "wrote " in as_json.stderr

    target = tmp_path / "reports" / "convert.json"
    to_file = run_cli("convert", str(model), "-o", str(tmp_path / "f.onnx"), "--json-file", str(target),
                      cwd=tmp_path, pythonpath=site)
    assert to_file.stdout.startswith("wrote ") and json.loads(target.read_text())["route"] == ["noisy", "onnx"]

    both = run_cli("convert", str(model), "-o", str(tmp_path / "x.onnx"), "-q", "-v", cwd=tmp_path, pythonpath=site)
    assert both.returncode == 2 and "-q and -v" in both.stderr
    clobber = run_cli("convert", str(model), "-o", str(tmp_path / "y.onnx"), "--log-file", str(model),
                      cwd=tmp_path, pythonpath=site)
    assert clobber.returncode == 2 and "would destroy that input" in clobber.stderr
    assert model.read_text() == "noisy model\n"


#: Each command with the arguments it needs (files that need not exist: -q -v is refused first).
EVERY_COMMAND = {
    "convert": ["m.onnx", "-o", "x.onnx"], "train": ["--framework", "numpy-mlp", "-o", "m.npmlp"],
    "plugins": [], "check": ["a.onnx", "b.onnx"], "demo": [], "reduce": ["m.onnx", "--to", "coreml", "-o", "s.onnx"],
    "suite": [],
}


def test_the_list_of_every_command_is_complete() -> None:
    from interop.cli.main import COMMANDS

    assert set(EVERY_COMMAND) == set(COMMANDS)


@pytest.mark.parametrize("command", sorted(EVERY_COMMAND))
def test_every_command_shares_q_v_log_file_json_and_json_file(tmp_path: Path, run_cli: Any, command: str) -> None:
    shown = run_cli(command, "--help", cwd=tmp_path)
    options = {"-q, --quiet", "-v, --verbose", "--log-file"} | ({"--json", "--json-file"} if command != "demo" else set())
    assert {option for option in options if option in shown.stdout} == options, shown.stdout
    both = run_cli(command, *EVERY_COMMAND[command], "-q", "-v", cwd=tmp_path)
    assert both.returncode == 2 and "-q and -v contradict each other" in both.stderr, both.stderr


def test_interops_own_warnings_stay_visible(tmp_path: Path, site: Path, model: Path, run_cli: Any,
                                             fake_install: Any) -> None:
    fake_install(site, "interop-broken", {"broken": "broken_plugin:plugin"},
                 {"broken_plugin": "import module_that_does_not_exist_anywhere\n"})
    done = run_cli("convert", str(model), "-o", str(tmp_path / "w.onnx"), cwd=tmp_path, pythonpath=site)
    assert done.returncode == 0
    assert "warning: plugin broken (distribution interop-broken 0.1) failed to load" in done.stderr
    assert _noise(done.stderr) == []


def test_the_python_api_keeps_chatter_off_the_terminal(
    tmp_path: Path, site: Path, model: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture,
) -> None:
    import interop
    from interop import distributions
    from interop.plugin_registry import discover

    monkeypatch.syspath_prepend(str(site))
    distributions.forget()
    registry = discover()
    interop.convert(model, tmp_path / "api.onnx", registry=registry)
    assert _noise("".join(capfd.readouterr())) == []
    log = tmp_path / "api.log"
    monkeypatch.setenv("INTEROP_LOG_FILE", str(log))
    interop.convert(model, tmp_path / "api2.onnx", registry=registry)
    # (pytest records Python warnings and logging itself; the C++ line is what reaches the file.)
    assert _noise("".join(capfd.readouterr())) == [] and "NOISY C++ LINE" in log.read_text()
    assert "NOISY own-handler record" in log.read_text()  # its handler was made in the first call
    distributions.forget()
    import logging

    logging.getLogger("noisylib.own").warning("after the API call")  # the handler's stream is not closed
    assert "--- Logging error ---" not in "".join(capfd.readouterr())


def test_train_follows_the_same_conventions(tmp_path: Path, run_cli: Any) -> None:
    as_json = run_cli("train", "--framework", "numpy-mlp", "-o", str(tmp_path / "a.npmlp"), "--epochs", "2",
                      "--json", cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["framework"] == "numpy-mlp"
    assert "epoch   2/2" in as_json.stderr and "saved " in as_json.stderr
    quiet = run_cli("train", "--framework", "numpy-mlp", "-o", str(tmp_path / "b.npmlp"), "--epochs", "2", "-q",
                    cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout.startswith("saved ")
    plain = run_cli("train", "--framework", "numpy-mlp", "-o", str(tmp_path / "c.npmlp"), "--epochs", "2",
                    cwd=tmp_path)
    assert plain.stdout.startswith("saved ") and "epoch   1/2" in plain.stderr


def test_plugins_json_follows_its_published_schema(tmp_path: Path, site: Path, run_cli: Any) -> None:
    import jsonschema

    from interop.plugins_info import SCHEMA_VERSION, schema

    done = run_cli("plugins", "--json", cwd=tmp_path, pythonpath=site)
    document = json.loads(done.stdout)
    jsonschema.validate(document, schema())
    assert document["schema_version"] == SCHEMA_VERSION
    assert "noisy" in {p["name"] for p in document["plugins"]}
    assert "noisy  (interop-noisy 0.1)" in done.stderr  # the table moved to stderr
    target = tmp_path / "plugins.json"
    to_file = run_cli("plugins", "--json-file", str(target), cwd=tmp_path, pythonpath=site)
    jsonschema.validate(json.loads(target.read_text()), schema())
    assert "noisy  (interop-noisy 0.1)" in to_file.stdout
    with pytest.raises(jsonschema.ValidationError):  # the schema has teeth
        broken = json.loads(target.read_text())
        broken["plugins"][0]["status"] = "fine"
        jsonschema.validate(broken, schema())


ALL_BUILTINS = "onnx,keras,torch,coreml,mxnet,numpy-mlp"


@pytest.mark.parametrize("args, disabled, needle", [
    (["check", "a.onnx", "b.onnx"], ALL_BUILTINS,
     "the onnx plugin reads '.onnx' models, but INTEROP_DISABLE_PLUGINS disables it"),
    (["convert", "a.onnx", "-o", "a.mlpackage"], "coreml",
     "the coreml plugin reads '.mlpackage' models, but INTEROP_DISABLE_PLUGINS disables it"),
    (["train", "--framework", "keras", "-o", "m.keras"], "keras",
     "the keras plugin trains with keras, but INTEROP_DISABLE_PLUGINS disables it"),
])
def test_a_disabled_builtin_plugin_is_named_not_sent_to_pip(tmp_path: Path, run_cli: Any, args: list[str],
                                                            disabled: str, needle: str) -> None:
    """Installed but disabled: `pip install` would not help (tests/plugins/test_core_only_install.py: not installed)."""
    for name in ("a.onnx", "b.onnx"):
        (tmp_path / name).write_bytes(b"\x08\x07")
    done = run_cli(*args, cwd=tmp_path, INTEROP_DISABLE_PLUGINS=disabled)
    assert needle in done.stdout + done.stderr, done.stdout + done.stderr
    assert "pip install" not in done.stderr and "--from" not in done.stderr
    assert done.returncode == 2


def test_interop_plugins_lists_disabled_builtins_as_disabled_not_as_missing(tmp_path: Path, run_cli: Any) -> None:
    done = run_cli("plugins", cwd=tmp_path, INTEROP_DISABLE_PLUGINS="coreml")
    assert done.returncode == 0
    assert "coreml  (interop-coreml" in done.stdout and "[disabled]" in done.stdout
    assert "pip install interop-coreml" not in done.stdout + done.stderr


def test_the_builtin_table_matches_the_builtin_declarations() -> None:
    from interop.builtin_plugins import BUILTIN_PLUGINS
    from interop.plugin_registry import get_registry

    loaded = {p.distribution: p.plugin for p in get_registry().plugins if p.plugin is not None}
    for known in BUILTIN_PLUGINS:
        plugin = loaded.get(known.distribution)
        if plugin is None:
            continue
        assert known.name == plugin.name
        assert known.formats == tuple(f.name for f in plugin.formats)
        assert set(known.suffixes) == {s for f in plugin.formats for s in (*f.extensions, *f.directory_suffixes)}
        assert set(known.converters) == {c.key for c in plugin.converters}
        assert set(known.runtimes) == {r.name for r in plugin.runtimes}
        assert set(known.trainers) == {t.framework for t in plugin.trainers}
    assert {"interop-onnx", "interop-coreml"} <= set(loaded), "the built-in plugins are installed for the suite"
