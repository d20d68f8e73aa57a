"""Phonon band structures and densities of states (phonopy), and a comparison plot.

q-points: ase's ``Cell.bandpath`` on the phonopy PRIMITIVE cell gives the high-symmetry path
(Setyawan-Curtarolo) with its special points already expressed in reduced coordinates of that
cell's reciprocal lattice, also for non-standard primitive cells (ase maps them from its
standard form). Those are exactly the reduced q that phonopy's ``run_band_structure`` and
``get_frequencies`` expect, so no basis change is applied (checked in tests/test_plots.py:
frequencies at ase's X equal phonopy's at q = (1/2, 0, 1/2) for fcc Si).

Units: frequencies THz, path distances 1/Å (phonopy's convention: reciprocal lattice without
2π), DOS states/THz per primitive cell. matplotlib is optional and imported on use only; the
figure is drawn on an explicit Agg canvas (no pyplot, no display, no global backend change).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from pftlite.core.atomic import atomic_path
from pftlite.core.plotting import require_matplotlib

#: Pinned phonopy DOS settings (not taken from phonopy's version defaults).
DOS_SETTINGS = {
    "is_mesh_symmetry": True,
    "is_gamma_center": False,
    "use_tetrahedron_method": True,  # applies when sigma is None; sigma given → Gaussian smearing
}


def band_path(ph, npoints: int = 51) -> dict:
    """High-symmetry q-path of ``ph.primitive`` (ase ``Cell.bandpath``; any cell setting).

    Returns ``{"segments": [(npoints, 3) arrays], "labels": [(start, end)], "path": str}``:
    one straight segment per pair of consecutive special points (both end points included,
    ``npoints`` q each), in reduced coordinates of the PRIMITIVE reciprocal lattice; path
    breaks (',' in ase path strings such as ``'GXWKGLUWLK,UX'``) start a new segment whose
    first label differs from the previous segment's last one.
    """
    from ase.cell import Cell
    from ase.dft.kpoints import parse_path_string

    if npoints < 2:
        raise ValueError(f"npoints must be >= 2, got {npoints}")
    bp = Cell(np.asarray(ph.primitive.cell, dtype=float)).bandpath(npoints=0)
    special = bp.special_points
    t = np.linspace(0.0, 1.0, npoints)[:, None]
    segments, labels = [], []
    for piece in parse_path_string(bp.path):
        for a, b in itertools.pairwise(piece):
            qa, qb = np.asarray(special[a], float), np.asarray(special[b], float)
            segments.append(qa + t * (qb - qa))
            labels.append((a, b))
    return {"segments": segments, "labels": labels, "path": bp.path}


def phonon_bands(ph, path: dict) -> dict:
    """Band structure of ``ph`` (force constants set) along ``path`` (from :func:`band_path`).

    Returns ``{"distances": [(n_k,) arrays, 1/Å, continuous across segments and breaks],
    "frequencies": [(n_k, n_band) arrays, THz]}``, one entry per segment.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ph.run_band_structure(
            [np.asarray(s, dtype=float) for s in path["segments"]],
            with_eigenvectors=False, is_band_connection=False,
        )  # fmt: skip
    bs = ph.band_structure
    return {
        "distances": [np.asarray(x, dtype=float) for x in bs.distances],
        "frequencies": [np.asarray(f, dtype=float) for f in bs.frequencies],
    }


def phonon_dos(
    ph,
    mesh: float | Sequence[int] = (24, 24, 24),
    sigma: float | None = None,
    freq_pitch: float = 0.05,
) -> tuple[np.ndarray, np.ndarray]:
    """Total phonon DOS of ``ph`` (force constants set) on a q-mesh.

    ``mesh``: 3 integers or a length (Å, phonopy's rule); ``sigma``: Gaussian width (THz),
    None = tetrahedron method; ``freq_pitch``: THz. Settings in :data:`DOS_SETTINGS`.
    Returns ``(freqs, dos)``: (n_f,) THz and (n_f,) states/THz per primitive cell
    (integrates to 3 × atoms in the primitive cell).
    """
    m = float(mesh) if np.isscalar(mesh) else [int(x) for x in mesh]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ph.run_mesh(
            m, is_mesh_symmetry=DOS_SETTINGS["is_mesh_symmetry"],
            is_gamma_center=DOS_SETTINGS["is_gamma_center"], with_eigenvectors=False,
        )  # fmt: skip
        ph.run_total_dos(
            sigma=sigma, freq_pitch=freq_pitch,
            use_tetrahedron_method=DOS_SETTINGS["use_tetrahedron_method"],
        )  # fmt: skip
    dos = ph.total_dos
    return np.asarray(dos.frequency_points, dtype=float), np.asarray(dos.dos, dtype=float)


def _label(name: str) -> str:
    return "Γ" if name in ("G", "Gamma", "GAMMA") else name


def plot_bands_dos(
    phonons: Mapping[str, object],
    output,
    title: str = "",
    styles: Mapping[str, dict] | None = None,
    npoints: int = 51,
    dos_mesh: float | Sequence[int] = (16, 16, 16),
) -> None:
    """Write one PNG to ``output``: band structures (left) and total DOS (right) of every
    labelled Phonopy object, e.g. ``{"DFT": ph_dft, "model": ph_model}``.

    All objects use the same reduced q-path, that of the FIRST object's primitive cell, and
    the first object's distances as x-axis (1/Å); frequencies THz on a shared axis.
    ``styles`` maps a label to matplotlib line keywords (color, linestyle, linewidth, ...);
    ``npoints``: q per path segment; ``dos_mesh``: :func:`phonon_dos` mesh (16³ tetrahedron: ~0.4 s per curve).
    Written atomically (temp file + rename). Raises InputError without matplotlib.
    """
    Figure, FigureCanvasAgg = require_matplotlib()
    if not phonons:
        raise ValueError("plot_bands_dos: no Phonopy objects given")
    styles = dict(styles or {})
    names = list(phonons)
    path = band_path(phonons[names[0]], npoints=npoints)
    bands = {n: phonon_bands(phonons[n], path) for n in names}
    dos = {n: phonon_dos(phonons[n], mesh=dos_mesh) for n in names}
    xs = bands[names[0]]["distances"]

    fig = Figure(figsize=(9.0, 5.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax, axd = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [3, 1]})
    for i, n in enumerate(names):
        style = {"color": f"C{i}", "linewidth": 1.2, **styles.get(n, {})}
        for j, (x, f) in enumerate(zip(xs, bands[n]["frequencies"])):
            ax.plot(x, f, label=n if j == 0 else None, **style)
        axd.plot(dos[n][1], dos[n][0], label=n, **style)

    # ticks: path start, every segment join (break: "K|U"), path end
    labels = path["labels"]
    ticks = [xs[0][0]] + [x[-1] for x in xs]
    names_at = [_label(labels[0][0])]
    for k in range(len(labels) - 1):
        end, start = labels[k][1], labels[k + 1][0]
        names_at.append(_label(end) if end == start else f"{_label(end)}|{_label(start)}")
    names_at.append(_label(labels[-1][1]))
    for x in ticks[1:-1]:
        ax.axvline(x, color="0.6", linewidth=0.6)
    ax.set_xticks(ticks, names_at)
    ax.set_xlim(ticks[0], ticks[-1])
    for a in (ax, axd):
        a.axhline(0.0, color="0.4", linewidth=0.5, linestyle=":")
    ax.set_ylabel("frequency (THz)")
    axd.set_xlabel("DOS (states/THz)")
    axd.set_xlim(left=0.0)
    axd.legend(loc="best", fontsize="small")
    if title:
        fig.suptitle(title)
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format="png", dpi=120)


