"""Per-species readout eps(B) and its hand-written derivatives (NumPy, used by Numba backend).

Site energy (eV) of atom i with species s, features B_i (F,):

    x   = scale * (B - mean)
    eps = e0[s] + w[s] . x + w2[s] . tanh(W1[s] x + b1[s])      (MLP term if readout="mlp")

``site_energy`` is written with ``xp`` operations only so the JAX backend differentiates the
very same formula; the other functions give its derivatives in closed form:

- :func:`value_and_grad`: eps_i and G_i = d eps_i / d B_i;
- :func:`grad_tangent`: Gdot_i = (d2 eps_i / dB2) Bdot_i (zero for the linear readout);
- :func:`param_grad`: d/d(theta) of sum_i [cE_i eps_i + G_i.Bw_i + Bu_i^T H_i Bv_i + G_i.Buv_i],
  the single contraction every training-loss gradient reduces to (see backends).
"""

from __future__ import annotations

import numpy as np


def site_energy(params, B, species, readout: str, xp=np):
    """eps (N,) eV from features B (N, F) and species indices (N,)."""
    x = params["scale"] * (B - params["mean"])
    eps = params["e0"][species] + xp.einsum("nf,nf->n", params["w"][species], x)
    if readout == "mlp":
        h = xp.einsum("nhf,nf->nh", params["W1"][species], x) + params["b1"][species]
        eps = eps + xp.einsum("nh,nh->n", params["w2"][species], xp.tanh(h))
    return eps


def _groups(species, n_species):
    for s in range(n_species):
        idx = np.nonzero(species == s)[0]
        if len(idx):
            yield s, idx


def value_and_grad(params, B, species, readout: str):
    """eps (N,) eV and G = d eps / d B (N, F) eV."""
    scale = params["scale"]
    x = scale * (B - params["mean"])
    eps = np.empty(len(B))
    G = np.empty_like(B)
    for s, idx in _groups(species, len(params["e0"])):
        xs = x[idx]
        w = params["w"][s]
        eps[idx] = params["e0"][s] + xs @ w
        gx = np.broadcast_to(w, xs.shape).copy()
        if readout == "mlp":
            W1, b1, w2 = params["W1"][s], params["b1"][s], params["w2"][s]
            t = np.tanh(xs @ W1.T + b1)
            eps[idx] += t @ w2
            gx += ((1.0 - t * t) * w2) @ W1
        G[idx] = gx * scale
    return eps, G


def grad_tangent(params, B, species, readout: str, Bd):
    """Gdot (m, N, F) = Hess_B eps . Bd for tangents Bd (m, N, F); None for a linear readout."""
    if readout != "mlp":
        return None
    scale = params["scale"]
    x = scale * (B - params["mean"])
    xd = scale * Bd
    out = np.zeros_like(Bd)
    for s, idx in _groups(species, len(params["e0"])):
        W1, b1, w2 = params["W1"][s], params["b1"][s], params["w2"][s]
        t = np.tanh(x[idx] @ W1.T + b1)  # (n, H)
        t2 = -2.0 * t * (1.0 - t * t)  # tanh''
        hd = xd[:, idx] @ W1.T  # (m, n, H)
        out[:, idx] = ((w2 * t2) * hd) @ W1 * scale
    return out


def param_grad(params, B, species, readout: str, cE, Bw=None, Bu=None, Bv=None, Buv=None):
    """Gradient w.r.t. trainable params of S = sum_i [cE_i eps_i + G_i.(Bw_i + Buv_i) + Bu_i^T H_i Bv_i].

    cE (N,) energy adjoints; Bw, Bu, Bv, Buv (N, F) feature tangents (None = 0). Returns a dict
    with the trainable keys (e0, w and, for the MLP, W1, b1, w2).
    """
    scale = params["scale"]
    x = scale * (B - params["mean"])
    y = np.zeros_like(x)
    if Bw is not None:
        y += scale * Bw
    if Buv is not None:
        y += scale * Buv
    has_h = Bu is not None and Bv is not None
    S = len(params["e0"])
    out = {"e0": np.zeros(S), "w": np.zeros_like(params["w"])}
    if readout == "mlp":
        out["W1"] = np.zeros_like(params["W1"])
        out["b1"] = np.zeros_like(params["b1"])
        out["w2"] = np.zeros_like(params["w2"])
    for s, idx in _groups(species, S):
        c = cE[idx]
        out["e0"][s] = c.sum()
        out["w"][s] = c @ x[idx] + y[idx].sum(0)
        if readout == "mlp":
            W1, b1, w2 = params["W1"][s], params["b1"][s], params["w2"][s]
            xs, ys = x[idx], y[idx]
            t = np.tanh(xs @ W1.T + b1)
            t1 = 1.0 - t * t
            t2 = -2.0 * t * t1
            t3 = t1 * (6.0 * t * t - 2.0)
            hy = ys @ W1.T
            if has_h:
                xu, xv = scale * Bu[idx], scale * Bv[idx]
                hu, hv = xu @ W1.T, xv @ W1.T
                huv = hu * hv
            else:
                huv = 0.0
            out["w2"][s] = c @ t + (t1 * hy).sum(0) + (t2 * huv).sum(0)
            delta = w2 * (c[:, None] * t1 + t2 * hy + t3 * huv)  # dS/dh (n, H)
            out["b1"][s] = delta.sum(0)
            gW = delta.T @ xs + (w2 * t1).T @ ys
            if has_h:
                gW += (w2 * t2 * hv).T @ xu + (w2 * t2 * hu).T @ xv
            out["W1"][s] = gW
    return out
