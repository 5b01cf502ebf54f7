"""A pytest plugin that turns a suite manifest into tests: ``pytest interop.toml``, ``pytest -n 8``.

pytest loads it through the ``pytest11`` entry point when interop is installed.
It collects ``interop.toml`` files, and ``pyproject.toml`` files that have a
``[tool.interop.suite]`` table, when pytest visits them (name them on the command
line, or put them under ``testpaths``). Each entry of the manifest — one model
converted into one target, or a model against its golden file — becomes one test
item named like the entry, ``interop.toml::models/iris.onnx[fp16]``, so ``-k``
selects entries as usual and pytest-xdist (``-n 8``) spreads them over processes.
Each item runs its entry the way ``interop suite`` does: in its own worker process
with the entry's timeout, through the same cache (``--interop-no-cache`` to run
everything again; ``--interop-update-golden`` rewrites the golden files).

Importing this module imports nothing but pytest: a test session that never meets
a manifest pays nothing for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("interop", "interop suite manifests (interop.toml)")
    group.addoption("--interop-no-cache", action="store_true", default=False,
                    help="run every manifest entry again instead of reusing cached results")
    group.addoption("--interop-update-golden", action="store_true", default=False,
                    help="write the golden files of manifest entries from the models' current outputs")
    group.addoption("--interop-threads", type=int, default=None, metavar="N",
                    help="compute threads of each entry's worker process (default: the manifest's, 1)")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.name == "interop.toml" or (file_path.name == "pyproject.toml" and _has_suite(file_path)):
        return ManifestFile.from_parent(parent, path=file_path)
    return None


def _has_suite(path: Path) -> bool:
    try:
        if "interop.suite" not in path.read_text(encoding="utf-8"):
            return False
    except (OSError, UnicodeDecodeError):
        return False
    from interop.suite.manifest import _has_suite_table

    return _has_suite_table(path)


class ManifestError(Exception):
    """The manifest is invalid: shown as its one-line message, not a traceback."""


class ManifestFile(pytest.File):
    """A manifest: one item per entry."""

    def collect(self):  # type: ignore[no-untyped-def]
        from interop.plugin_api import InteropError
        from interop.plugin_registry import get_registry
        from interop.suite import manifest as manifest_module
        from interop.suite.cache import Cache, environment_fingerprint
        from interop.suite.runner import SuiteOptions, project_check_table

        config = self.config
        update_golden = config.getoption("interop_update_golden")
        try:
            registry = get_registry()
            manifest = manifest_module.load(self.path)
            manifest_module.plan_entries(manifest, registry, update_golden)
        except InteropError as exc:
            raise ManifestError(exc.message + (f"\nhint: {exc.hint}" if exc.hint else "")) from None
        self.manifest = manifest
        self.cache = Cache(manifest.cache_dir)
        self.options = SuiteOptions(no_cache=config.getoption("interop_no_cache"), update_golden=update_golden,
                                    threads=config.getoption("interop_threads") or manifest.threads)
        self._context: tuple[dict[str, Any], Any] | None = None
        self._environment = (environment_fingerprint, registry, project_check_table)
        for entry in manifest.entries:
            yield SuiteItem.from_parent(self, name=entry.id, entry=entry)

    def context(self) -> tuple[dict[str, Any], Any]:
        """The environment fingerprint and the project's check table (computed once)."""
        if self._context is None:
            fingerprint, registry, check_table = self._environment
            self._context = (fingerprint(registry), check_table(self.manifest))
        return self._context

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:  # type: ignore[override]
        if isinstance(excinfo.value, ManifestError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


class EntryFailed(Exception):
    """An entry did not pass; carries its result."""

    def __init__(self, result: Any):
        super().__init__(result.id)
        self.result = result


class SuiteItem(pytest.Item):
    """One manifest entry: convert and check (or compare with the golden file) in a worker process."""

    def __init__(self, *, entry: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.entry = entry
        self.result: Any = None

    def runtest(self) -> None:
        from interop.suite.runner import make_job, run_job

        parent: ManifestFile = self.parent  # type: ignore[assignment]
        fingerprint, check_table = parent.context()
        job = make_job(self.entry, parent.manifest, parent.options.update_golden, fingerprint, check_table)
        self.result = run_job(job, parent.cache, parent.manifest, parent.options)
        self.user_properties.append(("status", self.result.status))
        self.user_properties.append(("cached", str(self.result.cached).lower()))
        if not self.result.passed:
            raise EntryFailed(self.result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:  # type: ignore[override]
        if isinstance(excinfo.value, EntryFailed):
            from interop.suite.results import SuiteResult

            result = excinfo.value.result
            return "\n".join([f"{result.id}: {result.status}", *SuiteResult("", [result]).failure_details()])
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, (self.entry.line - 1) if self.entry.line else None, self.entry.id
