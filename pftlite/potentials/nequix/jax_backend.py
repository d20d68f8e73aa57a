"""JAX backend of Nequix: the site energy on e3nn-jax (spherical harmonics, Clebsch–Gordan
coefficients), every derivative by autodiff (:func:`pftlite.potentials.jax_autodiff.make_backend`).

Arithmetic in the spec's dtype (float32 as published: positions and strain are cast on entry,
so forces, stress and HVPs are float32 numbers returned as float64 arrays; or float64). The
edge list is pftlite's (|r| < r_cut, periodic self-images included, centre i, neighbour j),
the same graph as nequix's matscipy list; messages go from j to i.
"""

from __future__ import annotations

import functools

import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
import numpy as np

from pftlite.potentials.jax_autodiff import EXPORTS, edge_vectors, make_backend
from pftlite.potentials.nequix.model import (
    SILU_NORM,
    NequixSpec,
    ir_name,
    pre_gate_irreps,
    trainable_keys,
)


@functools.lru_cache(maxsize=None)
def _cg(l1: int, l2: int, lo: int) -> np.ndarray:
    """Clebsch–Gordan coupling (2l1+1, 2l2+1, 2lo+1), e3nn's basis, component normalisation."""
    return np.asarray(e3nn.clebsch_gordan(l1, l2, lo), dtype=np.float64) * np.sqrt(2 * lo + 1)


def _radial(spec: NequixSpec, rn, dt):
    """Bessel basis times the polynomial envelope, (E, radial_basis_size); 0 beyond r_cut."""
    rc, p = float(spec.r_cut), float(spec.radial_polynomial_p)
    n = jnp.arange(1, spec.radial_basis_size + 1, dtype=dt) * jnp.pi
    safe = jnp.where(rn == 0.0, 1.0, rn)
    bessel = (2.0 / rc) * jnp.where(rn[:, None] == 0.0, n / rc, jnp.sin(n * rn[:, None] / rc) / safe[:, None])
    x = rn / rc
    env = 1.0 - (p + 1.0) * (p + 2.0) / 2.0 * x**p + p * (p + 2.0) * x ** (p + 1.0) - p * (p + 1.0) / 2.0 * x ** (p + 2.0)
    return bessel * (env * (x < 1.0))[:, None]


def _linear(blocks, params, prefix, irreps_in, irreps_out):
    """e3nn linear map per irrep block: out[n, w, m] = sum_u W[u, w] x[n, u, m] / sqrt(mul_in);
    an output block with no input of its irrep is zero (``None``)."""
    have = {(l, p): x for (_, l, p), x in zip(irreps_in, blocks)}
    out = []
    for _, l, p in irreps_out:
        key = f"{prefix}.{ir_name(l, p)}"
        x = have.get((l, p))
        if x is None or key not in params:
            out.append(None)
            continue
        W = params[key]
        out.append(jnp.einsum("nud,uw->nwd", x, W) / float(np.sqrt(W.shape[0])))
    return out


def _layer(spec: NequixSpec, params, i, feats, Y, basis, g, n_nodes, dt):
    """One interaction layer; feats: blocks (N, mul, 2l+1) in ``spec.layer_in(i)`` order."""
    ins = spec.layer_in(i)
    h = _linear(feats, params, f"L{i}.lin1", ins, ins)
    R = basis
    n_mlp = spec.radial_mlp_layers + 1
    for k in range(n_mlp):
        R = R @ params[f"L{i}.mlp{k}"]
        if k < n_mlp - 1:
            R = jax.nn.silu(R)
    post = pre_gate_irreps(spec, i)
    senders, receivers = g["edge_j"], g["edge_i"]
    norm = 1.0 / float(np.sqrt(spec.avg_n_neighbors))
    agg, col = {}, 0
    for b, l1, l2, lo, mul in spec.tp_paths(i):
        x = h[b][senders]  # (E, mul, 2l1+1)
        msg = jnp.einsum("eui,ej,ijk->euk", x, Y[l2], jnp.asarray(_cg(l1, l2, lo), dt))
        msg = msg * R[:, col : col + mul, None]
        col += mul
        agg.setdefault(lo, []).append(msg)
    blocks = []
    for _, l, _p in post:
        m = jnp.concatenate(agg[l], axis=1) if l in agg else None
        blocks.append(None if m is None else jax.ops.segment_sum(m, receivers, num_segments=n_nodes) * norm)
    tp_irreps = tuple((spec.tp_mul(i, l), l, p) for _, l, p in post)
    y = _linear(blocks, params, f"L{i}.lin2", tp_irreps, post)
    s = _linear(feats, params, f"L{i}.skip", ins, post)
    y = [a if c is None else (c if a is None else a + c) for a, c in zip(y, s)]
    # RMS layer norm over the irrep blocks: sum_blocks sum_{u,m} y^2 / (d^2 n_blocks)
    nb = len(y)
    ms = sum(jnp.sum(b * b, axis=(1, 2)) / float(b.shape[2] ** 2 * nb) for b in y)
    inv = (ms + 1e-12) ** -0.5
    y = [b * params[f"L{i}.ln.{ir_name(l, p)}"][None, :, None] * inv[:, None, None] for b, (_, l, p) in zip(y, post)]
    act = lambda z: jax.nn.silu(z) / SILU_NORM  # noqa: E731
    n_scalar = spec.layer_out(i)[0][0]
    scal = y[0][:, :, 0]
    out = [act(scal[:, :n_scalar])[:, :, None]]
    gates = act(scal[:, n_scalar:])
    g0 = 0
    for b in y[1:]:
        out.append(b * gates[:, g0 : g0 + b.shape[1], None])
        g0 += b.shape[1]
    return out


def _site_energies(spec: NequixSpec, params, g, positions, strain):
    """eps (N,) eV of every atom (see :mod:`pftlite.potentials.nequix.model`)."""
    dt = jnp.dtype(spec.dtype)
    r = edge_vectors(g, positions.astype(dt), strain.astype(dt))
    r2 = jnp.sum(r * r, axis=1)
    rn = jnp.where(r2 == 0.0, 0.0, jnp.sqrt(jnp.where(r2 == 0.0, 1.0, r2)))
    basis = _radial(spec, rn, dt)
    sh = e3nn.spherical_harmonics(e3nn.s2_irreps(spec.lmax), r, normalize=True, normalization="component").array
    Y = [sh[:, l * l : (l + 1) ** 2] for l in range(spec.lmax + 1)]
    n = positions.shape[0]
    feats = [jax.nn.one_hot(g["species"], spec.n_species, dtype=dt)[:, :, None]]
    for i in range(spec.n_layers):
        feats = _layer(spec, params, i, feats, Y, basis, g, n, dt)
    e = (feats[0][:, :, 0] @ params["readout"])[:, 0] / float(np.sqrt(params["readout"].shape[0]))
    return e * float(spec.scale) + float(spec.shift) + jax.lax.stop_gradient(params["atom_energies"])[g["species"]]


def _column_bytes(spec, batch) -> float:
    """One vmapped HVP column holds a few (E, T, (l_max + 1)^2) message tensors, T the widest
    layer's tensor-product copies (1312 for Nequix MP)."""
    T = max(sum(t[4] for t in spec.tp_paths(i)) for i in range(spec.n_layers))
    return 8.0 * max(batch.n_edges, 1) * T * (spec.lmax + 1) ** 2


#: padding buckets start at 16 atoms and 512 edges: every primitive cell shares one compilation
PAD = (16, 512)
_ops = make_backend(_site_energies, trainable_keys, _column_bytes, name="jax", pad=PAD)
(NAME, EXACT_HVP_DERIVATIVE, energy_forces_stress, hvp, hessian, hvp_derivative, loss_and_grad) = (
    getattr(_ops, k) for k in EXPORTS
)
