"""Test helpers for interop users and plugin authors.

* :func:`assert_equivalent` (check engineer): assert that two copies of a model
  compute the same function, in a user's own pytest suite.
* the plugin conformance kit (plugins engineer): :func:`check_plugin`,
  :func:`assert_plugin_conforms`.
"""

from interop.testing.equivalence import assert_equivalent

# --- conformance kit (plugins engineer owns this block) ---
from interop.testing.conformance import ConformanceReport, assert_plugin_conforms, check_plugin  # noqa: E402,F401
# --- end of conformance kit block ---

__all__ = ["assert_equivalent", "ConformanceReport", "assert_plugin_conforms", "check_plugin"]
