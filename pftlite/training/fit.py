"""Base fit by gradient (any potential), and the data helpers of a base fit.

:func:`fit_gradient` trains every trainable parameter on labelled energies, forces and
stresses: the PFT loop of :mod:`pftlite.training.tune` without phonon data. A potential that
is linear in its parameters offers a least-squares fit instead, or as the start
(``potential.family.least_squares``; the built-in model: :mod:`pftlite.potentials.manybody.linear_fit`).
"""

from __future__ import annotations

import numpy as np


def perturbed_copies(structures, rattle: float, strain: float, n: int = 24, seed: int = 0) -> list:
    """``n`` label-free copies of ``structures`` (taken in turn), each with a random symmetric
    strain (Gaussian, std ``strain``, dimensionless) and Gaussian atomic displacements (std
    ``rattle``, Å), from ``default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        a = structures[k * len(structures) // n].copy()
        a.calc = None
        e = rng.normal(scale=strain, size=(3, 3))
        a.set_cell(np.asarray(a.cell[:]) @ (np.eye(3) + 0.5 * (e + e.T)), scale_atoms=True)
        a.positions = a.positions + rng.normal(scale=rattle, size=a.positions.shape)
        out.append(a)
    return out


# --- gradient fit (any readout) ------------------------------------------------------------


def gradient_config(epochs: int = 100, lr: float = 1e-3, batch: int = 8, seed: int = 0, val_fraction: float = 0.1,
                    loss=None, **optimizer):  # fmt: skip
    """Settings of :func:`fit_gradient` as a :class:`pftlite.training.tune.TuneConfig` with no phonon
    term: one upstream batch per step (``k_upstream`` 1, so an epoch is one pass over the
    training split), ``loss`` (a :class:`pftlite.potentials.loss.LossSpec`; default the PFT recipe's
    upstream EFS weights 500 / 200 / 50, MSE), AdamW ``lr`` and further ``optimizer`` fields
    (schedule, warmup, lr_floor, weight_decay, clip_norm); ``ema_decay`` may be passed too."""
    import dataclasses

    from pftlite.training.tune import TuneConfig

    base = TuneConfig()
    ema = optimizer.pop("ema_decay", base.ema_decay)
    opt = dataclasses.replace(base.optimizer, lr=lr, **optimizer)
    return dataclasses.replace(base, epochs=epochs, k_upstream=1, upstream_batch=batch, seed=seed,
                               upstream_val_fraction=val_fraction, optimizer=opt, ema_decay=ema,
                               upstream_loss=loss or base.upstream_loss)  # fmt: skip


def fit_gradient(potential, backend, structures, cfg, run_dir=None, progress=None, stop_after_epoch=None) -> dict:
    """Train every trainable parameter of ``potential`` on labelled ``structures`` by gradient: the
    :func:`pftlite.training.tune.tune` loop with no phonon items (AdamW, global-norm clip, lr schedule,
    EMA; seeded validation split ``cfg.upstream_val_fraction``; the kept EMA ``best`` is the
    one with the lowest validation EFS loss; atomic checkpoints in ``run_dir`` and bitwise
    resume). cfg: see :func:`gradient_config`. Returns tune's state dict."""
    from pftlite.training.tune import tune

    if cfg.k_upstream < 1:
        raise ValueError("fit_gradient needs k_upstream >= 1")
    return tune(potential, backend, [], structures, cfg, run_dir=run_dir, progress=progress,
                stop_after_epoch=stop_after_epoch)  # fmt: skip


def equilibrium_labels(atoms):
    """A copy of ``atoms`` labelled as a relaxed DFT geometry: forces 0 (N, 3) eV/Å and
    stress 0 (6,) eV/Å³, no energy. For forces-only data sets (phono3py displacements carry
    no stress): the zero-stress row pins the model's equilibrium volume to the DFT one."""
    out = atoms.copy()
    out.calc = None
    out.arrays["forces"] = np.zeros((len(out), 3))
    out.info["stress"] = np.zeros(6)
    out.info.pop("energy", None)
    out.info["source"] = f"equilibrium {atoms.info.get('source', atoms.get_chemical_formula())}"
    return out


def holdout_split(n: int, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``n`` structures into sorted (train, test) index arrays; the test
    share is ``round(fraction * n)`` structures (whole structures, e.g. whole supercells)."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"holdout fraction must be in [0, 1), got {fraction}")
    perm = np.random.default_rng([seed, 0x5EED]).permutation(n)
    n_test = round(fraction * n)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


