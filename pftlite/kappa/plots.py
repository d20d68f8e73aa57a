"""Cumulative thermal conductivity against frequency, model over DFT (PNG)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from pftlite.core.atomic import atomic_path
from pftlite.core.plotting import require_matplotlib


def plot_kappa_cumulative(
    results: Mapping[str, object],
    output,
    temperature_index: int = 0,
    title: str | None = None,
    bins: int = 120,
) -> None:
    """Write one PNG: cumulative κ vs phonon frequency (top) and its spectral density (bottom).

    ``results`` maps a label to a KappaResult-like object or dict (``frequencies`` (n_ir, nb)
    THz, ``weights`` (n_ir,), and ``mode_kappa_P``/``mode_kappa_C`` (nT, n_ir, nb, 3, 3) or the
    benchmark's ``mode_kappa_tot_ave`` (nT, n_ir, nb), e.g. ``KsrmeMaterial.as_result()``).
    Solid line: κ̄ (mean of the diagonal, W/m-K) of all modes below ω
    (:func:`pftlite.kappa.ksrme.cumulative_kappa`); where per-mode tensors are given and xx and zz
    differ by > 1 % (wurtzite), dashed xx and dotted zz too. Bottom: dκ̄/dω (W/m-K/THz) on
    ``bins`` frequency bins shared by all labels. Written atomically (temporary file in the
    same folder, then renamed); InputError without matplotlib.
    """
    from pftlite.kappa.ksrme import cumulative_kappa

    Figure, FigureCanvasAgg = require_matplotlib()
    if not results:
        raise ValueError("plot_kappa_cumulative: no results given")
    curves = {label: cumulative_kappa(res, temperature_index) for label, res in results.items()}
    fmax = max(float(c["frequencies"][-1]) for c in curves.values())
    fmin = min(0.0, min(float(c["frequencies"][0]) for c in curves.values()))
    edges = np.linspace(fmin, fmax * 1.02 if fmax > 0 else 1.0, bins + 1)
    width = edges[1] - edges[0]

    fig = Figure(figsize=(7.0, 6.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax, axd = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    for i, (label, c) in enumerate(curves.items()):
        color, f, total = f"C{i}", c["frequencies"], c["mean"]
        ax.step(f, total, where="post", color=color, label=f"{label}: κ̄ = {total[-1]:.4g}")
        diag = c["diagonal"]
        if diag is not None and abs(diag[-1, 0] - diag[-1, 2]) > 0.01 * abs(total[-1]):
            ax.step(f, diag[:, 0], where="post", color=color, linestyle="--", linewidth=1.0,
                    label=f"{label}: xx = {diag[-1, 0]:.4g}")  # fmt: skip
            ax.step(f, diag[:, 2], where="post", color=color, linestyle=":", linewidth=1.0,
                    label=f"{label}: zz = {diag[-1, 2]:.4g}")  # fmt: skip
        per_mode = np.diff(total, prepend=0.0)
        dens, _ = np.histogram(f, bins=edges, weights=per_mode)
        axd.stairs(dens / width, edges, color=color, label=label)
    ax.set_ylabel("cumulative κ (W/m-K)")
    ax.set_ylim(bottom=0.0)
    ax.legend(loc="lower right", fontsize="small")
    axd.set_xlabel("frequency (THz)")
    axd.set_ylabel("dκ̄/dω (W/m-K/THz)")
    axd.set_xlim(edges[0], edges[-1])
    if title:
        fig.suptitle(title)
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
