"""The demo's figures (matplotlib, Agg backend): decision regions per model and runtime, and error distributions.

Panels are placed on whole pixels with equal sizes, so two panels showing the
same class regions are identical pixel for pixel (boundary lines drawn with
``contour`` are not: their anti-aliasing depends on the panel's position, so the
regions' edges alone mark the boundaries); each figure's layout (panel
titles and pixel boxes) is returned for ``figure.json`` so a test can crop them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REGION_COLORS = ("#fdd9b5", "#c7e9c0", "#c6dbef")
POINT_COLORS = ("#d95f02", "#1b9e77", "#2c7fb8")
MARKERS = ("o", "s", "^")
DPI = 100

# Pixel geometry of the decision-boundary figure.
PANEL_W, PANEL_H = 330, 250
LEFT, RIGHT, GAP_X = 70, 20, 80
HEADER, TITLE_H, BELOW_H = 50, 46, 52
FOOTER = 70


@dataclass
class RegionPanel:
    """One panel of decision regions: the class index at every grid point, and its labels."""

    row: int
    col: int
    title: str
    classes: np.ndarray  # int, shape of the grid
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class ErrorSeries:
    """The differences of one copy against its source, for the errors figure.

    ``magnitude`` is, per element, what the check's rule scales ``rtol`` by (|source|
    for the elementwise statistic, max(|source|, the sample's RMS) for ``scaled``), so
    an element passes exactly when it lies under the line ``atol + rtol * magnitude``.
    """

    label: str
    magnitude: np.ndarray
    differences: np.ndarray
    atol: float | None = None
    rtol: float | None = None
    stat: str | None = None
    #: The copy's file name, recorded in the figure's layout.
    file: str = ""

    @property
    def max_abs(self) -> float:
        return float(np.max(self.differences, initial=0.0))

    @property
    def exact_share(self) -> float:
        return float(np.count_nonzero(self.differences == 0)) / max(self.differences.size, 1)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _box(fig_w: int, fig_h: int, x0: int, top: int, w: int, h: int) -> list[float]:
    """Figure fractions of a box given in pixels from the top-left corner."""
    return [x0 / fig_w, 1 - (top + h) / fig_h, w / fig_w, h / fig_h]


def decision_boundaries(
    path: Path,
    panels: Sequence[RegionPanel],
    grid: tuple[np.ndarray, np.ndarray],
    points: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    title: str,
    footnote: str = "",
) -> dict[str, Any]:
    """Draw the region panels on a rows x cols grid into ``path``; returns the layout."""
    plt = _pyplot()
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    rows = max(p.row for p in panels) + 1
    cols = max(p.col for p in panels) + 1
    fig_w = LEFT + cols * PANEL_W + (cols - 1) * GAP_X + RIGHT
    row_h = TITLE_H + PANEL_H + BELOW_H
    fig_h = HEADER + rows * row_h + FOOTER
    fig = plt.figure(figsize=(fig_w / DPI, fig_h / DPI), dpi=DPI)
    fig.text(0.5, 1 - 18 / fig_h, title, ha="center", va="center", fontsize=13, weight="bold")
    xx, yy = grid
    cmap = ListedColormap(REGION_COLORS[: len(class_names)])
    levels = np.arange(len(class_names) + 1) - 0.5
    layout = []
    for panel in panels:
        x0 = LEFT + panel.col * (PANEL_W + GAP_X)
        top = HEADER + panel.row * row_h + TITLE_H
        ax = fig.add_axes(_box(fig_w, fig_h, x0, top, PANEL_W, PANEL_H))
        ax.contourf(xx, yy, panel.classes, levels=levels, cmap=cmap)
        for index, name in enumerate(class_names):
            chosen = labels == index
            ax.scatter(points[chosen, 0], points[chosen, 1], c=POINT_COLORS[index], marker=MARKERS[index],
                       s=22, edgecolors="black", linewidths=0.5, label=name)
        ax.set_xlim(xx.min(), xx.max())
        ax.set_ylim(yy.min(), yy.max())
        ax.set_xlabel("petal length (cm)")
        ax.set_ylabel("petal width (cm)")
        ax.set_title(panel.title, fontsize=9.5)
        layout.append({"row": panel.row, "col": panel.col, "title": panel.title,
                       "box": [x0, top, x0 + PANEL_W, top + PANEL_H], **panel.meta})
    handles = [Line2D([], [], marker=MARKERS[i], color="none", markerfacecolor=POINT_COLORS[i],
                      markeredgecolor="black", markersize=7, label=f"{name} (Iris sample)")
               for i, name in enumerate(class_names)]
    handles += [Patch(facecolor=REGION_COLORS[i], edgecolor="0.35", label=f"predicted {name}")
                for i, name in enumerate(class_names)]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=9,
               bbox_to_anchor=(0.5, 22 / fig_h))
    if footnote:
        fig.text(0.5, 8 / fig_h, footnote, ha="center", va="bottom", fontsize=8, color="0.3")
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return {"file": path.name, "width": fig_w, "height": fig_h, "rows": rows, "cols": cols, "panels": layout}


class _ErrorTicks:
    """Tick labels of a log axis: ``0`` at the floor where exact zeros are drawn, else ``1e-07``."""

    def __init__(self, floor: float):
        self.floor = floor

    def __call__(self, value: float, position: int | None = None) -> str:
        if value <= self.floor * 1.001:
            return "0"
        return f"{value:.0e}".replace("e-0", "e-").replace("e+0", "e")


def _floor(values: np.ndarray, default: float) -> float:
    """The decade below the smallest non-zero value: where exact zeros are drawn."""
    nonzero = np.abs(values[values != 0])
    smallest = float(nonzero.min()) if nonzero.size else default
    return float(10.0 ** (np.floor(np.log10(smallest)) - 1))


def _share(share: float) -> str:
    """``40%``; never ``100%`` or ``0%`` unless it is exactly so."""
    if 0.999 < share < 1.0:
        return ">99.9%"
    if 0.0 < share < 0.001:
        return "<0.1%"
    return f"{share:.1%}" if 0.0 < share < 0.01 or 0.99 < share < 1.0 else f"{share:.0%}"


def _decades(low: float, high: float) -> tuple[float, float]:
    return float(10.0 ** np.floor(np.log10(low))), float(10.0 ** np.ceil(np.log10(max(high, low * 10))))


ELEMENT_RULES = ("scaled", "elementwise")


def error_envelopes(
    path: Path, groups: Sequence[tuple[str, Sequence[ErrorSeries]]], title: str,
) -> dict[str, Any]:
    """One panel per source: |copy - source| against the magnitude the check's rule uses, with the
    tolerance envelope ``atol + rtol * magnitude`` the check applied; every panel on the same scales.

    Returns the layout, with each panel's numbers (max |Δ|, share of exact zeros, tolerance).
    """
    plt = _pyplot()
    cols = len(groups)
    panel_w, panel_h, left, gap, top, legend_h = 400, 300, 80, 90, 70, 80
    fig_w = left + cols * panel_w + (cols - 1) * gap + 30
    fig_h = top + panel_h + 50 + legend_h
    fig = plt.figure(figsize=(fig_w / DPI, fig_h / DPI), dpi=DPI)
    fig.text(0.5, 1 - 18 / fig_h, title, ha="center", va="center", fontsize=12, weight="bold")
    every = [s for _, series in groups for s in series]
    all_diffs = np.concatenate([s.differences.ravel() for s in every]) if every else np.zeros(1)
    all_mags = np.concatenate([s.magnitude.ravel() for s in every]) if every else np.ones(1)
    y_floor = _floor(all_diffs, 1e-9)
    x_floor = _floor(all_mags, 1e-6)
    allowed_top = max((s.atol or 0.0) + (s.rtol or 0.0) * float(all_mags.max(initial=1.0)) for s in every) \
        if every else 1.0
    x_limits = _decades(x_floor, float(all_mags.max(initial=1.0)))
    y_limits = _decades(y_floor, max(float(all_diffs.max(initial=0.0)), allowed_top) * 3)
    styles = (("o", "#1b6ca8"), ("s", "#d95f02"), ("^", "#1b9e77"), ("D", "#7570b3"))
    layout = []
    for col, (name, series) in enumerate(groups):
        x0 = left + col * (panel_w + gap)
        ax = fig.add_axes(_box(fig_w, fig_h, x0, top, panel_w, panel_h))
        numbers = []
        for index, s in enumerate(series):
            marker, color = styles[index % len(styles)]
            x = np.clip(s.magnitude.ravel(), x_floor, None)
            y = np.clip(s.differences.ravel(), y_floor, None)
            ax.scatter(x, y, s=4, marker=marker, color=color, alpha=0.35, linewidths=0, rasterized=True,
                       label=f"{s.label}: max |Δ| {s.max_abs:.2g}, {_share(s.exact_share)} exactly 0")
            numbers.append({"label": s.label, "file": s.file, "max_abs": s.max_abs, "exact_zero_share": s.exact_share,
                            "atol": s.atol, "rtol": s.rtol, "stat": s.stat})
        xs = np.logspace(np.log10(x_limits[0]), np.log10(x_limits[1]), 200)
        for atol, rtol, stat in sorted({(s.atol, s.rtol, s.stat) for s in series if s.atol is not None},
                                       key=lambda t: (t[0], t[1] or 0.0, t[2] or "")):
            if stat in ELEMENT_RULES or stat is None:
                ax.plot(xs, atol + (rtol or 0.0) * xs, color="crimson", linewidth=1.4,
                        label=f"tolerance: atol {atol:g} + rtol {rtol or 0:g} × magnitude (pass below)")
            else:
                ax.axhline(atol, color="crimson", linewidth=1.4, label=f"tolerance: {stat} of |Δ| ≤ atol {atol:g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.minorticks_off()  # minor ticks of log axes cost seconds to lay out and say little here
        ax.set_xlim(*x_limits)
        ax.set_ylim(*y_limits)
        ax.xaxis.set_major_formatter(_ErrorTicks(0.0))  # magnitudes are never drawn at a zero floor
        ax.yaxis.set_major_formatter(_ErrorTicks(y_floor))
        stats = {s.stat for s in series}
        ax.set_xlabel("max(|source|, RMS of its sample) per logit" if stats == {"scaled"}
                      else "|source| per logit", fontsize=9)
        ax.set_ylabel("|copy − source| (exact zeros at 0)", fontsize=9)
        worst = max((s.max_abs for s in series), default=0.0)
        ax.set_title(f"{name}\nmax |Δ| {worst:.2g}", fontsize=10)
        ax.legend(fontsize=8.5, loc="upper left", bbox_to_anchor=(0.0, -0.16), frameon=False, markerscale=3)
        layout.append({"row": 0, "col": col, "title": name, "box": [x0, top, x0 + panel_w, top + panel_h],
                       "series": numbers})
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return {"file": path.name, "width": fig_w, "height": fig_h, "rows": 1, "cols": cols, "panels": layout,
            "x_limits": list(x_limits), "y_limits": list(y_limits)}
