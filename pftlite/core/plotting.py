"""matplotlib, optional: imported on use only, figures drawn on an explicit Agg canvas (no
pyplot, no display, no global backend change)."""

from __future__ import annotations

from pftlite.core.errors import InputError


def require_matplotlib():
    """(Figure, FigureCanvasAgg) of matplotlib; a one-line InputError when it is missing."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise InputError("plotting needs matplotlib: pip install matplotlib") from None
    return Figure, FigureCanvasAgg
