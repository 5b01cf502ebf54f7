"""interop.distributions reads entry points and installed names as importlib.metadata does, without importing it."""

from __future__ import annotations

import importlib.metadata as md
import sys
import zipfile
from pathlib import Path

import pytest

from interop import distributions


def _ours(group: str) -> list[tuple[str, str, str, str]]:
    return sorted((e.name, e.value, e.distribution, e.version) for e in distributions.entry_points(group))


def _theirs(group: str) -> list[tuple[str, str, str, str]]:
    return sorted((e.name, e.value, e.dist.metadata["Name"], e.dist.version) for e in md.entry_points(group=group))


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on sys.path (first) with a dist-info, an egg-info, and a shadowed second copy."""
    first, second = tmp_path / "first", tmp_path / "second"
    for root, version in ((first, "2.0"), (second, "1.0")):
        info = root / f"My_Plugin-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: my-plugin\nVersion: {version}\n\nName: not a header\n")
        (info / "entry_points.txt").write_text(
            "[console_scripts]\nmy = my_plugin:main\n\n[interop.test-group]\n"
            f"alpha = my_plugin:plugin_{version.replace('.', '_')}\n# a comment\nbeta=my_plugin.sub:obj.attr [extra]\n")
    egg = first / "old_style.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: old-style\nVersion: 0.3\n")
    (egg / "entry_points.txt").write_text("[interop.test-group]\ngamma = old:thing\n")
    monkeypatch.syspath_prepend(str(second))
    monkeypatch.syspath_prepend(str(first))
    distributions.forget()
    yield first
    distributions.forget()


@pytest.mark.parametrize("group", ["interop.plugins", "console_scripts"])
def test_installed_entry_points_match_importlib_metadata(group: str) -> None:
    assert _ours(group) == _theirs(group)


def test_folders_on_sys_path_are_read_first_copy_winning(site: Path) -> None:
    assert _ours("interop.test-group") == _theirs("interop.test-group") == [
        ("alpha", "my_plugin:plugin_2_0", "my-plugin", "2.0"),
        ("beta", "my_plugin.sub:obj.attr [extra]", "my-plugin", "2.0"),
        ("gamma", "old:thing", "old-style", "0.3"),
    ]
    assert distributions.installed("MY.plugin") and distributions.installed("old_style")
    assert not distributions.installed("no-such-distribution-anywhere")


def test_every_installed_distribution_is_seen() -> None:
    names = {d.metadata["Name"] for d in md.distributions()}
    assert names and all(distributions.installed(name) for name in names)


def test_a_zip_on_sys_path_falls_back_to_importlib_metadata(site: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "zipped.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("zipped-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: zipped\nVersion: 1.0\n")
        zf.writestr("zipped-1.0.dist-info/entry_points.txt", "[interop.test-group]\ndelta = z:p\n")
    monkeypatch.syspath_prepend(str(archive))
    distributions.forget()
    assert ("delta", "z:p", "zipped", "1.0") in _ours("interop.test-group")
    assert distributions.installed("zipped")


def test_load_imports_the_named_attribute() -> None:
    ep = distributions.EntryPoint("x", "os.path:join [extra]", "g", "d", "1")
    assert ep.load() is __import__("os").path.join
    assert distributions.EntryPoint("x", "sys", "g", "d", "1").load() is sys
