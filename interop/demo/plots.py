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
    """Absolute differences of one copy against its source, for one histogram."""

    label: str
    differences: np.ndarray
    atol: float | None = None


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
    """Tick labels of the error axis: ``0`` at the floor where exact zeros are shown, else ``1e-07``."""

    def __init__(self, floor: float):
        self.floor = floor

    def __call__(self, value: float, position: int | None = None) -> str:
        if value <= self.floor * 1.001:
            return "0"
        return f"{value:.0e}".replace("e-0", "e-").replace("e+0", "e")


def _bins(values: np.ndarray, floor: float) -> np.ndarray:
    top = max(float(values.max(initial=0.0)), floor * 10)
    return np.logspace(np.log10(floor), np.ceil(np.log10(top)) + 0.5, 50)


def _floor(values: np.ndarray) -> float:
    """The decade below the smallest non-zero difference: where exact zeros are drawn."""
    nonzero = np.abs(values[values != 0])
    smallest = float(nonzero.min()) if nonzero.size else 1e-9
    return float(10.0 ** (np.floor(np.log10(smallest)) - 1))


def error_distributions(
    path: Path, groups: Sequence[tuple[str, Sequence[ErrorSeries]]], title: str,
) -> dict[str, Any]:
    """One panel per source: a histogram of |copy - source| per copy, on a log axis; returns the layout."""
    plt = _pyplot()
    cols = len(groups)
    panel_w, panel_h, left, gap, top, bottom = 380, 270, 70, 60, 60, 60
    fig_w = left + cols * panel_w + (cols - 1) * gap + 20
    fig_h = top + panel_h + bottom
    fig = plt.figure(figsize=(fig_w / DPI, fig_h / DPI), dpi=DPI)
    fig.text(0.5, 1 - 16 / fig_h, title, ha="center", va="center", fontsize=12, weight="bold")
    styles = ("-", "--", ":", "-.")
    layout = []
    for col, (name, series) in enumerate(groups):
        x0 = left + col * (panel_w + gap)
        ax = fig.add_axes(_box(fig_w, fig_h, x0, top, panel_w, panel_h))
        joined = np.concatenate([s.differences.ravel() for s in series]) if series else np.zeros(1)
        floor = _floor(joined)
        bins = _bins(joined, floor)
        top_count = 1.0
        for index, s in enumerate(series):
            values = np.abs(s.differences.ravel().astype(np.float64))
            exact = int(np.count_nonzero(values == 0))
            label = f"{s.label}: max {values.max(initial=0):.1e}, {exact / max(values.size, 1):.0%} exactly 0"
            counts, _, _ = ax.hist(np.clip(values, floor, None), bins=bins, histtype="step", linewidth=1.6,
                                   linestyle=styles[index % len(styles)], label=label)
            top_count = max(top_count, float(np.max(counts)))
        atols = sorted({s.atol for s in series if s.atol is not None})
        for atol in atols:
            ax.axvline(atol, color="crimson", linewidth=1, linestyle="--", label=f"tolerance atol {atol:g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        # Minor ticks of log axes cost seconds to lay out and say little here.
        ax.minorticks_off()
        ax.xaxis.set_major_formatter(_ErrorTicks(floor))
        ax.set_ylim(0.8, top_count * 40)  # head room for the legend above the bars
        ax.set_xlabel("|copy − source| per logit (exact zeros at 0)")
        ax.set_ylabel("count")
        ax.set_title(name, fontsize=10)
        ax.legend(fontsize=7, loc="upper left")
        layout.append({"row": 0, "col": col, "title": name, "box": [x0, top, x0 + panel_w, top + panel_h]})
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return {"file": path.name, "width": fig_w, "height": fig_h, "rows": 1, "cols": cols, "panels": layout}
