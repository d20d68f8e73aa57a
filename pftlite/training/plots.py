"""The loss curves of a training run (PNG)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from pftlite.core.atomic import atomic_path
from pftlite.core.plotting import require_matplotlib


def plot_training(log: Sequence[Mapping], val_log: Sequence[Mapping], output, title: str = "") -> None:
    """Loss curves of a fine-tuning run as one PNG: per-update Hessian-column MAE (phonon
    steps) and upstream loss (left, log scale, vs optimizer update), exact full-Hessian MAE
    of the EMA per epoch (right, eV/Å²). Written atomically."""
    Figure, FigureCanvasAgg = require_matplotlib()
    fig = Figure(figsize=(10, 4), dpi=110)
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    ph = [r for r in log if r.get("kind") == "phonon"]
    up = [r for r in log if r.get("kind") == "upstream"]
    if ph:
        ax1.plot([r["update"] for r in ph], [r.get("hessian", np.nan) for r in ph], ".", ms=2, label="Hessian column MAE (eV/Å²)")
    if up:
        ax1.plot([r["update"] for r in up], [r["loss"] for r in up], ".", ms=2, alpha=0.5, label="upstream loss")
    ax1.set_yscale("log")
    ax1.set_xlabel("optimizer update")
    ax1.legend(fontsize=8)
    ax2.plot([r["epoch"] for r in val_log], [r["phonon_loss"] for r in val_log], "o-", label="full-Hessian MAE (EMA)")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("eV/Å²")
    if any("val_forces_mae" in r for r in val_log):
        ax3 = ax2.twinx()
        ax3.plot([r["epoch"] for r in val_log], [r.get("val_forces_mae", np.nan) for r in val_log], "s--", color="C1",
                 label="upstream val force MAE (eV/Å)")  # fmt: skip
        ax3.set_ylabel("eV/Å")
        ax3.legend(fontsize=8, loc="upper right")
    ax2.legend(fontsize=8, loc="upper left")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format="png")
