"""Installing a test plugin without pip: its modules and a dist-info folder in a directory for PYTHONPATH.

Python finds entry points through ``*.dist-info/entry_points.txt`` on ``sys.path``,
so a test "installs" a plugin by writing both into a temporary directory put on
the ``PYTHONPATH`` of a CLI subprocess.
"""

from __future__ import annotations

import textwrap
from pathlib import Path


def fake_install(site: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> Path:
    """Write modules and ``DIST-0.1.dist-info`` (METADATA + entry points) into ``site``."""
    site.mkdir(parents=True, exist_ok=True)
    for name, source in modules.items():
        (site / f"{name}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "\n".join(f"{name} = {value}" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[interop.plugins]\n{lines}\n")
    return site
