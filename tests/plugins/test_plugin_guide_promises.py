"""What docs/plugins.md promises a plugin author, held to the code with a stranger's plugin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fake_plugins import IMPL_HELPERS, one_format_plugin

IMPL = IMPL_HELPERS + '''
def load(path):
    # This session's engine depends on the model; the runtime declares "guide (numpy)".
    return Session("guide (numpy, from the session)")

def convert(src, dst, options):
    write_identity_onnx(dst)
'''


def test_the_sessions_engine_wins_and_the_declared_one_is_what_plugins_shows(
    tmp_path: Path, fake_install: Any, run_cli: Any,
) -> None:
    site = fake_install(tmp_path / "site", "interop-guide", {"guide": "guide:plugin"},
                        {"guide": one_format_plugin("guide"), "guide_impl": IMPL})
    (tmp_path / "m.guide").write_text("a model\n")
    checked = run_cli("check", "m.guide", "m.guide", "--json", cwd=tmp_path, pythonpath=site)
    assert checked.returncode == 0, checked.stderr
    document = json.loads(checked.stdout)
    assert document["pairs"][0]["engine"] == "guide (numpy, from the session)"
    assert document["pairs"][0]["reference"]["engine"] == "guide (numpy, from the session)"
    listed = run_cli("plugins", "--json", cwd=tmp_path, pythonpath=site)
    runtimes = {rt["name"]: rt for p in json.loads(listed.stdout)["plugins"] for rt in p["runtimes"]}
    assert runtimes["guide"]["engine"] == "guide (numpy)"
