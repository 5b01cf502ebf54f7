"""Converters, runtimes and trainers alike: `requires` (all of them) and an optional `available()`."""

from __future__ import annotations

from pathlib import Path

import pytest

from interop.plugin_api import Converter, Format, Plugin, Runtime, Trainer
from interop.plugin_registry import LoadedPlugin, Registry, availability
from interop.routing import plan_route


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    (tmp_path / "avail_checks.py").write_text(
        "def never():\n    return False, 'needs a GPU this machine does not have'\n"
        "def always():\n    return True, ''\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    plugin = Plugin(
        name="avail", api_version=1,
        formats=(Format("aa", extensions=(".aa",)), Format("bb", extensions=(".bb",))),
        converters=(Converter("aa", "bb", "m:f", available="avail_checks:never"),),
        runtimes=(Runtime("rt", ("aa",), "m:load", available="avail_checks:always",
                          requires=("interop", "no-such-distribution-anywhere")),),
        trainers=(Trainer("fw", "aa", ".aa", "m:train", available="avail_checks:never"),),
    )
    plugin.validate()
    registry = Registry()
    registry.add(LoadedPlugin("avail", "interop-avail", "0.1", "ok", plugin=plugin))
    return registry


def test_available_is_honoured_for_every_kind(registry: Registry) -> None:
    ok, why = availability(registry.converters[("aa", "bb")], registry)
    assert not ok and why == "needs a GPU this machine does not have"
    ok, why = availability(registry.trainers["fw"], registry)
    assert not ok and "GPU" in why
    ok, why = availability(registry.runtimes["rt"], registry)
    assert not ok and "no-such-distribution-anywhere" in why and "interop," not in why  # all of requires
    with pytest.raises(Exception, match="exists but cannot run here: .*GPU"):
        plan_route("aa", "bb", registry)
