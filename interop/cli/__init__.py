"""The ``interop`` command line: one module per command, loaded when that command runs."""
