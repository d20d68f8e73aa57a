"""Errors of a potential on labelled structures: energy, forces, stress, and the EFS loss."""

from __future__ import annotations

import numpy as np

from pftlite.structures.batch import make_batch
from pftlite.structures.padding import with_shape


def errors(potential, structures, backend: str = "numba", loss=None, params=None, shapes=None) -> dict:
    """MAE and RMSE of energy (eV/atom), forces (eV/Å) and stress (GPa) on labelled structures.

    backend: a backend name; params: optional parameters replacing the potential's (a trainer's
    current ones). loss: optional :class:`pftlite.potentials.loss.LossSpec` (EFS terms); then ``res["loss"]`` is that
    training loss over all ``structures`` at once (each term a mean over every labelled entry).
    shapes: optional padded shapes (:mod:`pftlite.structures.padding`) for padding backends.
    """
    from ase.stress import full_3x3_to_voigt_6_stress, voigt_6_to_full_3x3_stress

    ev = potential.on(backend)
    de, df, ds = [], [], []
    preds, labels = [], []
    for a in structures:
        out = ev.energy_forces_stress(with_shape(make_batch([a], potential), shapes), params)
        if np.isfinite(a.info.get("energy", np.nan)):
            de.append((out["energy"][0] - a.info["energy"]) / len(a))
        if "forces" in a.arrays:
            df.append((out["forces"] - a.arrays["forces"]).ravel())
        if "stress" in a.info:
            ds.append((full_3x3_to_voigt_6_stress(out["stress"][0]) - a.info["stress"]) * 160.21766208)
        if loss is not None:
            preds.append(out)
            labels.append((a.info.get("energy", np.nan),
                           a.arrays["forces"] if "forces" in a.arrays else np.full((len(a), 3), np.nan),
                           voigt_6_to_full_3x3_stress(a.info["stress"]) if "stress" in a.info else np.full((3, 3), np.nan)))  # fmt: skip
    res = {}
    for name, vals in (("energy", de), ("forces", df), ("stress", ds)):
        if vals:
            v = np.concatenate([np.atleast_1d(x) for x in vals])
            res[name] = {"mae": float(np.abs(v).mean()), "rmse": float(np.sqrt((v * v).mean()))}
    if loss is not None and structures:
        from pftlite.potentials.loss import Targets, loss_value

        pred = {"energy": np.concatenate([o["energy"] for o in preds]), "forces": np.concatenate([o["forces"] for o in preds]),
                "stress": np.concatenate([o["stress"] for o in preds])}  # fmt: skip
        B = len(structures)
        t = Targets(energy=np.array([x[0] for x in labels], dtype=float), forces=np.concatenate([x[1] for x in labels]),
                    stress=np.stack([x[2] for x in labels]), columns=-np.ones(B, dtype=np.int64),
                    hessian_columns=np.full((len(pred["forces"]), 3), np.nan))  # fmt: skip
        value, _ = loss_value(loss, pred, t, np.array([len(a) for a in structures], dtype=float))
        res["loss"] = float(value)
    return res
