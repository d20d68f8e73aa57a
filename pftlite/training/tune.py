"""Phonon fine-tuning (PFT): train against DFT force constants, one sampled Hessian column per
structure per step (one HVP), co-trained on upstream energy/force/stress data.

Step structure: every phonon step (one batch of phonon supercells, one column each) is
followed by ``k_upstream`` upstream EFS batches; each batch is one AdamW update; an EMA of
the parameters follows every update. After each epoch the EMA is validated (exact
full-Hessian MAE from the irreducible columns, upstream EFS errors) and a checkpoint is
written atomically; the EMA with the best phonon validation loss (the full-Hessian MAE, or
MSE when the Hessian term is an MSE) is the tuned model.

Every random choice is a function of (seed, epoch, step, structure): upstream order from
``default_rng([seed, epoch, UPSTREAM_TAG])``, columns from :mod:`pftlite.training.samplers`. The
checkpoint holds every array of the state in float64, so a killed run resumed from its last
checkpoint ends exactly where an uninterrupted run would.

Phonon labels at the DFT reference geometry: Hessian columns from the DFT force constants
(eV/Å²), forces 0 (equilibrium), stress -p I (a DFT structure relaxed under pressure p, 0 for
most), energy unused.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from pftlite.core.atomic import atomic_path
from pftlite.phonons.symmetry import Orbits, hessian_from_irreducible, orbits
from pftlite.potentials.loss import LossSpec, Targets
from pftlite.structures.batch import make_batch
from pftlite.structures.padding import plan_shapes, with_shape
from pftlite.training.metrics import errors
from pftlite.training.optim import AdamWConfig, adamw_init, adamw_step, ema_update
from pftlite.training.samplers import sample_columns

UPSTREAM_TAG = 1 << 30
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class TuneConfig:
    """Fine-tuning settings; defaults follow the published PFT recipe.

    phonon_loss / upstream_loss: term weights and kinds (Hessian: per-component MAE of the
    column, eV/Å²); k_upstream: upstream batches per phonon batch (0 = no co-training);
    steps_per_epoch: phonon steps per epoch (None: one pass over the upstream batches, or 8
    without co-training); upstream_val_fraction: held-out share of the upstream data;
    select_force_budget: checkpoint rule — 0: the EMA with the best full-Hessian validation
    MAE; b > 0: the best of the epochs whose upstream *validation* force MAE is at most
    (1 + b) × the base model's (the base model if none is); upstream_shapes: at most this many
    padded shapes for all upstream training and validation batches on a padding backend
    (:mod:`pftlite.structures.padding`: one compile each), 0 = the backend's own buckets —
    speed only, not part of the run's key.
    """

    epochs: int = 20
    steps_per_epoch: int | None = None
    k_upstream: int = 4
    upstream_batch: int = 8
    phonon_batch: int = 1
    sampler: str = "uniform"
    seed: int = 0
    phonon_loss: LossSpec = field(
        default_factory=lambda: LossSpec(energy=0.0, forces=20.0, stress=5.0, hessian=100.0, kind="mse", hessian_kind="mae")
    )
    upstream_loss: LossSpec = field(default_factory=lambda: LossSpec(energy=500.0, forces=200.0, stress=50.0, kind="mse"))
    optimizer: AdamWConfig = field(default_factory=lambda: AdamWConfig(lr=3e-4, weight_decay=0.0, clip_norm=10.0))
    ema_decay: float = 0.99
    upstream_val_fraction: float = 0.1
    select_force_budget: float = 0.0
    upstream_shapes: int = 4

    def to_dict(self) -> dict:
        d = asdict(self)
        d["optimizer"] = self.optimizer.to_dict()
        d["phonon_loss"] = self.phonon_loss.to_dict()
        d["upstream_loss"] = self.upstream_loss.to_dict()
        return d


@dataclass(frozen=True, eq=False)
class PhononItem:
    """One phonon training structure: supercell (ase.Atoms, DFT geometry), DFT force
    constants fc (N, N, 3, 3) eV/Å², its symmetry (:class:`Orbits`), a name, and the pressure
    (GPa) its DFT cell was relaxed under: the stress label is -p I."""

    name: str
    atoms: object
    fc: np.ndarray
    orbit: Orbits
    pressure_GPa: float = 0.0


def phonon_items(refs) -> list[PhononItem]:
    """Hessian labels from DFT phonon references (:class:`pftlite.datasets.phonopy_refs.PhononReference`):
    the symmetrized DFT fc2 in the reference supercell, and the reference's pressure."""
    from pftlite.phonons.force_constants import (
        make_phonopy,
        reference_force_constants,
        supercell_atoms,
    )

    out = []
    for ref in refs:
        ph = make_phonopy(ref.unitcell, ref.supercell_matrix, ref.primitive_matrix)
        fc, _ = reference_force_constants(ph, ref.dataset, ref.force_constants)
        atoms = supercell_atoms(ph)
        out.append(PhononItem(ref.name, atoms, fc, orbits(atoms), float(ref.pressure_GPa)))
    return out


def split_upstream(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``n`` upstream structures into (train, validation) index arrays."""
    perm = np.random.default_rng([seed, UPSTREAM_TAG + 1]).permutation(n)
    n_val = round(fraction * n) if n > 1 else 0
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def upstream_targets(structures, batch) -> Targets:
    """EFS labels of labelled ase.Atoms (info energy eV, arrays forces eV/Å, info stress Voigt
    eV/Å³ ASE sign); missing ones are NaN."""
    from ase.stress import voigt_6_to_full_3x3_stress

    B, N = len(structures), batch.n_atoms
    e = np.array([a.info.get("energy", np.nan) for a in structures], dtype=float)
    f = np.concatenate([a.arrays["forces"] if "forces" in a.arrays else np.full((len(a), 3), np.nan) for a in structures])
    s = np.stack([voigt_6_to_full_3x3_stress(a.info["stress"]) if "stress" in a.info else np.full((3, 3), np.nan) for a in structures])
    return Targets(energy=e, forces=f, stress=s, columns=-np.ones(B, dtype=np.int64), hessian_columns=np.full((N, 3), np.nan))


def phonon_targets(items: list[PhononItem], batch, columns) -> Targets:
    """Labels of a phonon batch for sampled ``columns`` (B,): the DFT Hessian column, zero
    forces, the equilibrium stress -p I (eV/Å³; p of each item, mostly 0), no energy."""
    from ase.units import GPa

    B, N = len(items), batch.n_atoms
    h = np.empty((N, 3))
    for b, (it, k) in enumerate(zip(items, columns)):
        j, d = divmod(int(k), 3)
        o = batch.atom_offsets[b]
        h[o : o + len(it.atoms)] = it.fc[:, j, :, d]  # (H e_{j,d})[i, a] = fc[i, j, a, d]
    stress = np.stack([-it.pressure_GPa * GPa * np.eye(3) for it in items])
    return Targets(energy=np.full(B, np.nan), forces=np.zeros((N, 3)), stress=stress,
                   columns=np.asarray(columns, dtype=np.int64), hessian_columns=h)  # fmt: skip


def full_hessian_errors(potential, backend: str, item: PhononItem, params=None) -> dict:
    """Exact full-Hessian errors of one structure from the 3 columns of each irreducible atom
    (symmetry gives the rest): ``mae`` (the PFT Hessian term over all columns), ``rmse``,
    eV/Å², and the number of HVPs used. ``params``: optional, replacing the potential's."""
    ev = potential.on(backend)
    batch = make_batch([item.atoms], potential)
    fc = hessian_from_irreducible(lambda ks: ev.hessian(batch, columns=ks, params=params), item.orbit, len(item.atoms))
    d = fc - item.fc
    return {"mae": float(np.abs(d).mean()), "rmse": float(np.sqrt((d * d).mean())), "n_hvp": 3 * len(item.orbit.irreducible)}


def steps_per_epoch(cfg: TuneConfig, n_upstream_train: int) -> int:
    if cfg.steps_per_epoch:
        return cfg.steps_per_epoch
    if cfg.k_upstream and n_upstream_train:
        n_batches = -(-n_upstream_train // cfg.upstream_batch)
        return max(1, -(-n_batches // cfg.k_upstream))
    return 8


def total_updates(cfg: TuneConfig, n_steps: int, n_upstream_train: int, n_phonon: int = 1) -> int:
    """AdamW updates of the whole run (the lr schedule's length); ``n_phonon`` = 0: no phonon
    update per step (EFS training, :func:`pftlite.training.fit.fit_gradient`)."""
    k = cfg.k_upstream if n_upstream_train else 0
    return cfg.epochs * n_steps * ((1 if n_phonon else 0) + k)


def eligible(cfg: TuneConfig, val: dict, base_val: dict) -> bool:
    """Whether a validated EMA may be kept under ``cfg.select_force_budget``."""
    if not cfg.select_force_budget or "val_forces_mae" not in base_val:
        return True
    return val["val_forces_mae"] <= (1.0 + cfg.select_force_budget) * base_val["val_forces_mae"]


def config_key(cfg: TuneConfig, potential, items, n_upstream, data_key: str | None = None) -> str:
    """Identifies a run (config, base model, data sizes, and ``data_key`` when given: e.g. the
    self-distillation set's key); a checkpoint from another run is refused."""
    d = cfg.to_dict()
    d.pop("upstream_shapes")  # speed only: a run may resume with another plan
    h = hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode())
    h.update(json.dumps(potential.spec.to_dict(), sort_keys=True).encode())
    for k in sorted(potential.params):
        h.update(np.ascontiguousarray(potential.params[k]).tobytes())
    for it in items:
        h.update(it.name.encode())
        h.update(np.ascontiguousarray(it.fc).tobytes())
    h.update(str(n_upstream).encode())
    if data_key is not None:
        h.update(str(data_key).encode())
    return h.hexdigest()[:16]


# --- checkpoints --------------------------------------------------------------------------


def save_checkpoint(path, state: dict) -> None:
    """All arrays of the training state (float64) + JSON metadata, written atomically."""
    arrays = {}
    for group in ("params", "ema", "best", "m", "v"):
        for k, v in state[group].items():
            arrays[f"{group}/{k}"] = np.asarray(v, dtype=np.float64)
    meta = {k: state[k] for k in ("key", "epoch", "t", "best_loss", "best_epoch", "log", "val_log")}
    meta["version"] = CHECKPOINT_VERSION
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def load_checkpoint(path) -> dict:
    from pftlite.core.errors import InputError

    try:
        with np.load(path, allow_pickle=False) as z:
            files = dict(z)
        meta = json.loads(files.pop("meta").tobytes().decode())
    except Exception as exc:  # noqa: BLE001 - any decode failure is a damaged checkpoint
        raise InputError(f"{path}: not a readable pftlite checkpoint ({type(exc).__name__})") from None
    state = {k: meta[k] for k in ("key", "epoch", "t", "best_loss", "best_epoch", "log", "val_log")}
    for group in ("params", "ema", "best", "m", "v"):
        state[group] = {k.split("/", 1)[1]: v for k, v in files.items() if k.startswith(group + "/")}
    return state


# --- padded shapes of the upstream batches --------------------------------------------------


def upstream_batches(cfg: TuneConfig, n: int, epoch: int) -> list:
    """Index arrays of epoch ``epoch``'s upstream batches over ``n`` training structures."""
    order = np.random.default_rng([cfg.seed, epoch, UPSTREAM_TAG]).permutation(n)
    return [order[s : s + cfg.upstream_batch] for s in range(0, len(order), cfg.upstream_batch)]


def upstream_shapes(cfg: TuneConfig, potential, backend: str, up_train: list, up_val: list) -> np.ndarray | None:
    """The padded shapes (K, 2) planned for every upstream batch of every epoch and every
    validation structure (:func:`pftlite.structures.padding.plan_shapes`); None when
    ``cfg.upstream_shapes`` is 0, the backend does not pad, or there is no upstream data."""
    if not cfg.upstream_shapes or not (up_train or up_val) or not potential.on(backend).pads:
        return None
    size = np.array([(len(a), make_batch([a], potential).n_edges) for a in up_train + up_val], dtype=np.int64)
    train, val = size[: len(up_train)], size[len(up_train) :]
    rows = [val]
    if cfg.k_upstream and len(train):
        for epoch in range(1, cfg.epochs + 1):
            rows += [train[idx].sum(axis=0, keepdims=True) for idx in upstream_batches(cfg, len(train), epoch)]
    return plan_shapes(np.concatenate(rows) + [1, 0], cfg.upstream_shapes)  # + the padding atom (batch_need)


# --- the loop -----------------------------------------------------------------------------


def tune(potential, backend: str, items: list[PhononItem], upstream: list, cfg: TuneConfig,
         run_dir=None, progress=None, stop_after_epoch: int | None = None, data_key: str | None = None) -> dict:  # fmt: skip
    """Fine-tune ``potential``'s parameters; returns the final state dict: ``best`` (EMA params with the best
    phonon validation loss), ``params``, ``ema``, ``log`` (one row per update),
    ``val_log`` (one row per epoch), ``best_epoch``, ``best_loss``.

    backend: a backend name ("numba", "jax"). upstream: labelled ase.Atoms.
    run_dir: where ``checkpoint.npz`` is kept (resume if present and from the same run).
    progress(epoch, step, n_steps, row): called after each phonon step.
    stop_after_epoch: stop (as if killed) after writing this epoch's checkpoint (tests).
    data_key: identifies data beyond its size (part of the checkpoint's run key).

    With no phonon ``items`` this is plain EFS training (:func:`pftlite.training.fit.fit_gradient`):
    each step is ``k_upstream`` upstream updates only, and the kept EMA is the one with the
    lowest upstream validation loss (``val_loss``: ``cfg.upstream_loss`` over the whole
    validation split; the last EMA when there is no validation split).
    """
    from pftlite.core.errors import InputError

    keys = potential.trainable
    params = potential.params
    ev = potential.on(backend)
    train_idx, val_idx = split_upstream(len(upstream), cfg.upstream_val_fraction, cfg.seed)
    up_train = [upstream[i] for i in train_idx]
    up_val = [upstream[i] for i in val_idx]
    n_steps = steps_per_epoch(cfg, len(up_train))
    n_total = total_updates(cfg, n_steps, len(up_train), len(items))
    select = "phonon_loss" if items else "val_loss"
    if not items and not (cfg.k_upstream and up_train):
        raise ValueError("tune: without phonon items, training needs upstream data and k_upstream >= 1")
    key = config_key(cfg, potential, items, len(upstream), data_key)
    shapes = upstream_shapes(cfg, potential, backend, up_train, up_val)
    ckpt = Path(run_dir) / "checkpoint.npz" if run_dir is not None else None
    if ckpt is not None and ckpt.exists():
        state = load_checkpoint(ckpt)
        if state["key"] != key:
            raise InputError(f"{ckpt}: checkpoint of a different run (config, model or data); use a new folder or --restart")
        for group in ("params", "ema", "best", "m", "v"):  # checkpoints hold float64: back to the model's dtype
            state[group] = {k: np.asarray(v, dtype=params[k].dtype) for k, v in state[group].items()}
        state["params"] = {**params, **state["params"]}
        state["ema"] = {**params, **state["ema"]}
        state["best"] = {**params, **state["best"]}
    else:
        opt = adamw_init(params, keys)
        state = {"key": key, "epoch": 0, "t": 0, "params": dict(params), "ema": {k: params[k].copy() for k in keys},
                 "best": {k: params[k].copy() for k in keys}, "m": opt["m"], "v": opt["v"],
                 "best_loss": None, "best_epoch": -1, "log": [], "val_log": []}  # fmt: skip
        state["val_log"].append(_validate(potential, {**params}, backend, items, up_val, 0, cfg.phonon_loss.hessian_kind,
                                          cfg.upstream_loss, shapes))  # fmt: skip
        state["best_loss"] = state["val_log"][0].get(select, np.inf)
    groups = [list(range(s, min(s + cfg.phonon_batch, len(items)))) for s in range(0, len(items), cfg.phonon_batch)]
    phonon_batches = [make_batch([items[i].atoms for i in g], potential) for g in groups]

    p = state["params"]
    ema = {k: state["ema"][k] for k in keys}
    opt = {"t": state["t"], "m": state["m"], "v": state["v"]}
    for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
        up_batches = upstream_batches(cfg, len(up_train), epoch)
        u = 0
        for step in range(n_steps):
            row = None
            if groups:
                g = step % len(groups)
                its = [items[i] for i in groups[g]]
                batch = phonon_batches[g]
                cols = sample_columns(cfg.sampler, [len(it.atoms) for it in its], cfg.seed, epoch, step,
                                      [it.orbit for it in its])  # fmt: skip
                loss, grads, terms = ev.loss_and_grad(batch, phonon_targets(its, batch, cols), cfg.phonon_loss, params=p)
                p, opt, info = adamw_step(cfg.optimizer, p, {k: np.asarray(v) for k, v in grads.items()}, opt, n_total)
                ema = ema_update(ema, p, cfg.ema_decay)
                row = {"epoch": epoch, "step": step, "update": opt["t"], "kind": "phonon", "loss": float(loss),
                       **{f"{k}": float(v) for k, v in terms.items()}, "grad_norm": info["grad_norm"], "lr": info["lr"]}  # fmt: skip
                state["log"].append(row)
            for _ in range(cfg.k_upstream if up_batches else 0):
                idx = up_batches[u % len(up_batches)]
                u += 1
                structs = [up_train[i] for i in idx]
                ub = with_shape(make_batch(structs, potential), shapes)
                loss_u, grads, terms = ev.loss_and_grad(ub, upstream_targets(structs, ub), cfg.upstream_loss, params=p)
                p, opt, info = adamw_step(cfg.optimizer, p, {k: np.asarray(v) for k, v in grads.items()}, opt, n_total)
                ema = ema_update(ema, p, cfg.ema_decay)
                state["log"].append({"epoch": epoch, "step": step, "update": opt["t"], "kind": "upstream",
                                     "loss": float(loss_u), **{k: float(v) for k, v in terms.items()},
                                     "grad_norm": info["grad_norm"], "lr": info["lr"]})  # fmt: skip
            if progress:
                progress(epoch, step, n_steps, row if row is not None else state["log"][-1])
        val = _validate(potential, {**p, **ema}, backend, items, up_val, epoch, cfg.phonon_loss.hessian_kind,
                        cfg.upstream_loss, shapes)  # fmt: skip
        state["val_log"].append(val)
        loss_v = val.get(select)  # None: no validation split (EFS training), keep the last EMA
        if (loss_v is None or loss_v < state["best_loss"]) and eligible(cfg, val, state["val_log"][0]):
            state["best_loss"], state["best_epoch"] = (np.inf if loss_v is None else loss_v), epoch
            state["best"] = {k: ema[k].copy() for k in keys}
        state.update(epoch=epoch, t=opt["t"], params=p, ema=ema, m=opt["m"], v=opt["v"])
        if ckpt is not None:
            save_checkpoint(ckpt, {**state, "params": {k: p[k] for k in keys}})
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            break
    state["params"] = p
    state["ema"] = ema
    state["best"] = {**params, **state["best"]}
    state["split"] = {"upstream_train": train_idx.tolist(), "upstream_val": val_idx.tolist(),
                      "phonon": [it.name for it in items]}  # fmt: skip
    state["steps_per_epoch"] = n_steps
    state["upstream_shapes"] = None if shapes is None else shapes.tolist()
    return state


def _validate(potential, params, backend, items, up_val, epoch, kind="mae", upstream_loss=None, shapes=None) -> dict:
    """Validation row; ``phonon_loss`` is the full-Hessian error of the training term's kind
    (mean over structures of the MAE, or of the MSE = RMSE²); ``val_loss`` (with
    ``upstream_loss``) the upstream EFS loss over the whole validation split."""
    t0 = time.perf_counter()
    ph = {it.name: full_hessian_errors(potential, backend, it, params) for it in items}
    per = [v["mae"] if kind == "mae" else v["rmse"] ** 2 for v in ph.values()]
    row = {"epoch": epoch, "phonon_loss": float(np.mean(per)) if ph else 0.0, "hessian": ph}
    efs = errors(potential, up_val, backend, loss=upstream_loss, params=params, shapes=shapes) if up_val else {}
    for q in ("energy", "forces", "stress"):
        if q in efs:
            row[f"val_{q}_mae"] = efs[q]["mae"]
    if "loss" in efs:
        row["val_loss"] = efs["loss"]
    row["seconds"] = time.perf_counter() - t0
    return row

