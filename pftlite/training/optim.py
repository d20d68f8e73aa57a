"""AdamW with decoupled weight decay, global-norm gradient clipping and a parameter EMA.

Functional: ``state = adamw_init(params)``; ``params, state, info = adamw_step(cfg, params,
grads, state, total)``; ``ema = ema_update(ema, params, decay)``. Dicts of float64 NumPy arrays
in, new dicts out; identical arithmetic for gradients from either backend. The step size of
update t is :func:`learning_rate` (cfg, t, total): a pure function of the update count, so a
resumed run follows the same schedule.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

SCHEDULES = ("constant", "cosine")

import numpy as np


@dataclass(frozen=True)
class AdamWConfig:
    """lr: (peak) step size (parameter units); weight_decay: decoupled, per step × the current
    step size, not applied to ``no_decay`` keys; clip_norm: max global gradient norm (0 = off).

    schedule: ``constant`` (lr after the warmup) or ``cosine`` (after the warmup, cosine decay
    from lr to ``lr_floor`` × lr at the last update); warmup: share of all updates over which
    the step size rises linearly from lr/n_warmup to lr (0 = none).
    """

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    clip_norm: float = 10.0
    no_decay: tuple = ("e0",)
    schedule: str = "constant"
    warmup: float = 0.0
    lr_floor: float = 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["no_decay"] = list(self.no_decay)
        return d


def adamw_init(params: dict, keys) -> dict:
    """Optimizer state for ``keys`` of ``params``: step count t and moments m, v."""
    return {"t": 0, "m": {k: np.zeros_like(params[k]) for k in keys}, "v": {k: np.zeros_like(params[k]) for k in keys}}


def global_norm(grads: dict) -> float:
    return float(np.sqrt(sum(float(np.sum(g * g)) for g in grads.values())))


def learning_rate(cfg: AdamWConfig, t: int, total: int | None = None) -> float:
    """Step size of update ``t`` (1-based) of ``total`` updates. ``constant`` without warmup
    is exactly ``cfg.lr`` (``total`` not needed)."""
    if cfg.schedule not in SCHEDULES:
        raise ValueError(f"unknown lr schedule {cfg.schedule!r} (known: {', '.join(SCHEDULES)})")
    if cfg.schedule == "constant" and not cfg.warmup:
        return cfg.lr
    if not total or total < 1:
        raise ValueError(f"lr schedule {cfg.schedule!r} with warmup {cfg.warmup} needs the total number of updates")
    n_warm = round(cfg.warmup * total)
    if t <= n_warm:
        return cfg.lr * t / n_warm
    if cfg.schedule == "constant":
        return cfg.lr
    x = min(1.0, (t - n_warm - 1) / max(1, total - n_warm - 1))  # 0 right after the warmup, 1 at the last update
    return cfg.lr * (cfg.lr_floor + (1.0 - cfg.lr_floor) * 0.5 * (1.0 + math.cos(math.pi * x)))


def adamw_step(cfg: AdamWConfig, params: dict, grads: dict, state: dict, total: int | None = None):
    """One AdamW update of the keys in ``grads`` with step size ``learning_rate(cfg, t,
    total)``. Returns (params, state, info) with info ``grad_norm`` (before clipping),
    ``clipped`` (bool) and ``lr``."""
    norm = global_norm(grads)
    factor = cfg.clip_norm / norm if cfg.clip_norm and norm > cfg.clip_norm else 1.0
    t = state["t"] + 1
    lr = learning_rate(cfg, t, total)
    new_p, new_m, new_v = dict(params), {}, {}
    for k, g in grads.items():
        g = g * factor
        m = cfg.beta1 * state["m"][k] + (1.0 - cfg.beta1) * g
        v = cfg.beta2 * state["v"][k] + (1.0 - cfg.beta2) * g * g
        mhat = m / (1.0 - cfg.beta1**t)
        vhat = v / (1.0 - cfg.beta2**t)
        p = params[k]
        if cfg.weight_decay and k not in cfg.no_decay:
            p = p * (1.0 - lr * cfg.weight_decay)
        new_p[k] = p - lr * mhat / (np.sqrt(vhat) + cfg.eps)
        new_m[k], new_v[k] = m, v
    return new_p, {"t": t, "m": new_m, "v": new_v}, {"grad_norm": norm, "clipped": factor < 1.0, "lr": lr}


def ema_update(ema: dict, params: dict, decay: float) -> dict:
    """Exponential moving average of the arrays in ``ema``: decay * ema + (1 - decay) * params."""
    return {k: decay * v + (1.0 - decay) * params[k] for k, v in ema.items()}
