"""Test helpers for interop and its plugins (check engineer owns this file)."""

# conformance kit (plugins engineer)
from interop.testing.conformance import ConformanceReport, assert_plugin_conforms, check_plugin  # noqa: E402,F401
