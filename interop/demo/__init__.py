"""``interop demo``: the reference network trained in several frameworks, copied to other formats,
every copy checked against its source, with decision-boundary plots and a report.

:func:`run_demo` is the Python entry point; the modules underneath do one job
each: :mod:`~interop.demo.model` (the models, lineages and result, as data),
:mod:`~interop.demo.pipeline` (the timed stages), :mod:`~interop.demo.checking` (the
check engine, whose runs of every model also feed the figures),
:mod:`~interop.demo.engines` (the report's runtime table), :mod:`~interop.demo.plots`,
:mod:`~interop.demo.files` and :mod:`~interop.demo.markdown` (the files written).
"""

from __future__ import annotations

from interop.demo.pipeline import DemoResult, run_demo

__all__ = ["run_demo", "DemoResult"]
