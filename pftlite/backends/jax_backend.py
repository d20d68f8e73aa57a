"""JAX backend (CPU or GPU): the same potential, derivatives by autodiff.

Forces and stress are reverse mode, Hessian-vector products forward-over-reverse
(``jvp`` of ``grad``), the training gradient differentiates through the HVP. The maths comes
from the shared tables (:mod:`pftlite.basis`), the shared radial formula
(:func:`pftlite.basis.radial_basis`), readout (:func:`pftlite.readout.site_energy`) and loss
(:func:`pftlite.loss.loss_value`), so the two backends cannot drift apart silently.

float64 is enabled on import (before any array exists). Public functions take and return
NumPy arrays and have the Numba backend's signatures.
"""

from __future__ import annotations

import functools

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp
import numpy as np

from ..basis import radial_basis
from ..batch import Batch
from ..loss import LossSpec, Targets, column_vectors, loss_value
from ..model import trainable_keys
from ..readout import site_energy

NAME = "jax"

jax.tree_util.register_pytree_node(
    Targets,
    lambda t: ((t.energy, t.forces, t.stress, t.hessian_columns), None),
    lambda _, c: Targets(energy=c[0], forces=c[1], stress=c[2], columns=None, hessian_columns=c[3]),
)


def _graph(batch: Batch) -> dict:
    """The batch as a dict of device arrays (positions excluded)."""
    return {
        "edge_i": jnp.asarray(batch.edge_i),
        "edge_j": jnp.asarray(batch.edge_j),
        "edge_shift": jnp.asarray(batch.edge_shift),
        "edge_struct": jnp.asarray(batch.edge_struct),
        "species": jnp.asarray(batch.species),
        "atom_struct": jnp.asarray(batch.atom_struct),
        "volumes": jnp.asarray(batch.volumes),
    }


def _site_energies(spec, params, g, positions, strain):
    """eps (N,) for positions (N, 3) and per-structure strain (B, 3, 3) (r -> (1 + strain) r)."""
    T = spec.tables
    K, L = T.n_radial, T.l_max
    L2 = (L + 1) ** 2
    r = positions[g["edge_j"]] - positions[g["edge_i"]] + g["edge_shift"]
    D = jnp.eye(3) + strain[g["edge_struct"]]
    r = jnp.einsum("eab,eb->ea", D, r)
    rn = jnp.sqrt(jnp.sum(r * r, axis=1))
    R = radial_basis(rn, spec.r_cut, K, spec.envelope_power, xp=jnp)  # (K, E)
    # solid harmonics by explicit monomials (no x**0 derivative traps)
    pw = [jnp.ones((3, r.shape[0]))]
    for _ in range(L):
        pw.append(pw[-1] * r.T)
    pw = jnp.stack(pw)  # (L+1, 3, E)
    mon = pw[T.sh_pow[:, 0], 0] * pw[T.sh_pow[:, 1], 1] * pw[T.sh_pow[:, 2], 2]  # (Tm, E)
    onehot = np.zeros((len(T.sh_lm), L2))
    onehot[np.arange(len(T.sh_lm)), T.sh_lm] = T.sh_coef
    Z = mon.T @ jnp.asarray(onehot)  # (E, L2)
    rl = jnp.stack([rn ** (-l) for l in range(L + 1)])[T.l_of_lm]  # (L2, E)
    phi = R.T[:, :, None] * (Z * rl.T)[:, None, :]  # (E, K, L2)
    N = positions.shape[0]
    C = T.n_species
    A = jnp.zeros((N, C, K, L2)).at[g["edge_i"], g["species"][g["edge_j"]]].add(phi)
    A = A.reshape(N, C * K * L2)
    F = T.n_features
    B = jnp.zeros((N, F))
    B = B.at[:, T.lin_f].add(A[:, T.lin_a])
    B = B.at[:, T.quad_f].add(T.quad_c * A[:, T.quad_a] * A[:, T.quad_b])
    if len(T.cub_f):
        B = B.at[:, T.cub_f].add(T.cub_c * A[:, T.cub_a] * A[:, T.cub_b] * A[:, T.cub_d])
    return site_energy(params, B, g["species"], spec.readout, xp=jnp)


def _energies(spec, params, g, positions, strain):
    eps = _site_energies(spec, params, g, positions, strain)
    return jax.ops.segment_sum(eps, g["atom_struct"], num_segments=strain.shape[0])


def _efs(spec, params, g, positions, n_struct):
    strain = jnp.zeros((n_struct, 3, 3))

    def total(x, s):
        e = _energies(spec, params, g, x, s)
        return e.sum(), e

    (_, e), (dx, ds) = jax.value_and_grad(total, argnums=(0, 1), has_aux=True)(positions, strain)
    ds = 0.5 * (ds + jnp.swapaxes(ds, 1, 2))
    return e, -dx, ds / g["volumes"][:, None, None]


def _hvp(spec, params, g, positions, n_struct, v):
    strain = jnp.zeros((n_struct, 3, 3))

    def grad_x(x):
        return jax.grad(lambda y: _energies(spec, params, g, y, strain).sum())(x)

    return jax.jvp(grad_x, (positions,), (v,))[1]


@functools.partial(jax.jit, static_argnums=(0, 4))
def _efs_jit(spec, params, g, positions, n_struct):
    return _efs(spec, params, g, positions, n_struct)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _hvp_jit(spec, params, g, positions, n_struct, v):
    return _hvp(spec, params, g, positions, n_struct, v)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _hvp_many_jit(spec, params, g, positions, n_struct, V):
    return jax.vmap(lambda v: _hvp(spec, params, g, positions, n_struct, v))(V)


def _params(params):
    return {k: jnp.asarray(v) for k, v in params.items()}


def energy_forces_stress(spec, params, batch: Batch) -> dict:
    """Energies (B,) eV, forces (N, 3) eV/Å, stress (B, 3, 3) eV/Å³ (ASE sign, (1/V) dE/dε)."""
    e, f, s = _efs_jit(spec, _params(params), _graph(batch), jnp.asarray(batch.positions), batch.n_structures)
    return {"energy": np.asarray(e), "forces": np.asarray(f), "stress": np.asarray(s)}


def hvp(spec, params, batch: Batch, v) -> np.ndarray:
    """Hessian-vector product H v, (N, 3) eV/Å², one vector per structure (v: (N, 3) Å)."""
    v = jnp.asarray(np.asarray(v, dtype=np.float64).reshape(batch.n_atoms, 3))
    out = _hvp_jit(spec, _params(params), _graph(batch), jnp.asarray(batch.positions), batch.n_structures, v)
    return np.asarray(out)


def hessian(spec, params, batch: Batch, columns=None, chunk: int | None = None) -> np.ndarray:
    """Force constants of one structure from vmapped HVPs in chunks (see numba backend)."""
    if batch.n_structures != 1:
        raise ValueError("hessian() takes a batch holding one structure")
    N = batch.n_atoms
    cols = np.arange(3 * N) if columns is None else np.asarray(columns, dtype=np.int64)
    if chunk is None:
        # each vmapped column holds a few (E, K * L2) intermediates: keep a chunk near 256 MB
        per_col = 8 * max(batch.n_edges, 1) * spec.n_radial * (spec.l_max + 1) ** 2 * 4
        chunk = max(1, min(len(cols), int(256e6 // per_col)))
    p, g, x = _params(params), _graph(batch), jnp.asarray(batch.positions)
    out = np.empty((len(cols), N, 3))
    for s in range(0, len(cols), chunk):
        c = cols[s : s + chunk]
        V = np.zeros((chunk, N, 3))  # fixed chunk shape: one compilation
        V[np.arange(len(c)), c // 3, c % 3] = 1.0
        out[s : s + len(c)] = np.asarray(_hvp_many_jit(spec, p, g, x, 1, jnp.asarray(V)))[: len(c)]
    if columns is not None:
        return out
    return out.reshape(N, 3, N, 3).transpose(2, 0, 3, 1).copy()


@functools.partial(jax.jit, static_argnums=(0, 5, 6))
def _loss_jit(spec, train, fixed, g, positions, n_struct, lspec, tg, v):
    n_atoms = jax.ops.segment_sum(jnp.ones(positions.shape[0]), g["atom_struct"], num_segments=n_struct)

    def loss(train):
        params = {**fixed, **train}
        e, f, s = _efs(spec, params, g, positions, n_struct)
        pred = {"energy": e, "forces": f, "stress": s}
        if lspec.hessian:
            pred["hv"] = _hvp(spec, params, g, positions, n_struct, v)
        total, terms = loss_value(lspec, pred, tg, n_atoms, xp=jnp)
        return total, terms

    (total, terms), grads = jax.value_and_grad(loss, has_aux=True)(train)
    return total, grads, terms


def loss_and_grad(spec, params, batch: Batch, targets: Targets, lspec: LossSpec):
    """Training loss, gradient w.r.t. trainable params, per-term values (see numba backend)."""
    keys = trainable_keys(spec)
    train = {k: jnp.asarray(params[k]) for k in keys}
    fixed = {k: jnp.asarray(v) for k, v in params.items() if k not in keys}
    tg = Targets(
        energy=jnp.asarray(targets.energy, dtype=jnp.float64),
        forces=jnp.asarray(targets.forces, dtype=jnp.float64),
        stress=jnp.asarray(targets.stress, dtype=jnp.float64),
        columns=None,
        hessian_columns=jnp.asarray(targets.hessian_columns, dtype=jnp.float64),
    )
    v = jnp.asarray(column_vectors(batch, targets.columns)) if lspec.hessian else None
    total, grads, terms = _loss_jit(
        spec, train, fixed, _graph(batch), jnp.asarray(batch.positions), batch.n_structures, lspec, tg, v
    )
    return float(total), {k: np.asarray(x) for k, x in grads.items()}, {k: float(x) for k, x in terms.items()}


@functools.partial(jax.jit, static_argnums=(0, 4))
def _hvp_derivative_jit(spec, params, g, positions, n_struct, u, V):
    def one(v):
        return jax.jvp(lambda x: _hvp(spec, params, g, x, n_struct, v), (positions,), (u,))[1]

    return jax.vmap(one)(V)


def hvp_derivative(spec, params, batch: Batch, u, V, h: float = 1e-3, chunk: int | None = None) -> np.ndarray:
    """d/de [H(x + e u) V_i] at e = 0 for each V_i: (n, N, 3) eV/Å³, **exact** (forward-mode
    jvp of the HVP, vmapped over V in fixed-size chunks). u: (N, 3); V: (n, N, 3).
    ``h`` is accepted for signature parity with the Numba backend and ignored. The neighbour
    list is that of ``batch`` (held fixed; the energy is smooth at the cutoff).
    """
    N = batch.n_atoms
    u = jnp.asarray(np.asarray(u, dtype=np.float64).reshape(N, 3))
    V = np.asarray(V, dtype=np.float64).reshape(-1, N, 3)
    if chunk is None:
        per_col = 8 * max(batch.n_edges, 1) * spec.n_radial * (spec.l_max + 1) ** 2 * 8
        chunk = max(1, min(len(V), int(256e6 // per_col)))
    p, g, x = _params(params), _graph(batch), jnp.asarray(batch.positions)
    out = np.empty_like(V)
    for s in range(0, len(V), chunk):
        c = V[s : s + chunk]
        pad = np.zeros((chunk, N, 3))  # fixed chunk shape: one compilation
        pad[: len(c)] = c
        res = _hvp_derivative_jit(spec, p, g, x, batch.n_structures, u, jnp.asarray(pad))
        out[s : s + len(c)] = np.asarray(res)[: len(c)]
    return out
