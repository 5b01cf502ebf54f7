"""``interop demo``: the reference network trained in several frameworks, copied to ONNX and Core ML,
every copy checked against its source, with decision-boundary plots and a report.

:func:`run_demo` is the Python entry point; the modules underneath do one job
each: :mod:`~interop.demo.pipeline` (the timed stages), :mod:`~interop.demo.engines`
(runtime choice), :mod:`~interop.demo.predictions` (outputs for the plots),
:mod:`~interop.demo.equivalence` (the check engine), :mod:`~interop.demo.plots`,
:mod:`~interop.demo.outputs` and :mod:`~interop.demo.report` (the files written).
"""

from __future__ import annotations

from interop.demo.pipeline import DemoResult, run_demo

__all__ = ["run_demo", "DemoResult"]
