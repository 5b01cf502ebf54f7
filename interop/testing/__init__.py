"""Test helpers for interop users and plugin authors.

* :func:`assert_equivalent` (check engineer): assert that two copies of a model
  compute the same function, in a user's own pytest suite.
* :func:`compare_outputs`: `interop check`'s comparison of two sets of outputs
  already computed (by name, with its tolerances), returning a :class:`Comparison`.
* the plugin conformance kit (plugins engineer): :func:`check_plugin`,
  :func:`assert_plugin_conforms`.
* :mod:`interop.testing.pytest_plugin`: pytest collects suite manifests
  (``interop.toml``) as tests, one item per entry (loaded by pytest itself through
  the ``pytest11`` entry point; see docs/suite.md).
"""

from interop.testing.comparison import Comparison, compare_outputs
from interop.testing.equivalence import assert_equivalent

# --- conformance kit (plugins engineer owns this block) ---
from interop.testing.conformance import ConformanceReport, assert_plugin_conforms, check_plugin  # noqa: E402,F401
# --- end of conformance kit block ---

__all__ = ["assert_equivalent", "compare_outputs", "Comparison", "ConformanceReport", "assert_plugin_conforms",
           "check_plugin"]
