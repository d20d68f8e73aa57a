"""Every backend function from one energy function, by JAX autodiff.

A JAX potential supplies ``site_energies(spec, params, g, positions, strain) -> (N,)`` eV: the
energy of each atom for positions (N, 3) Å and a per-structure homogeneous strain (B, 3, 3)
(r -> (1 + strain) r), on the batch graph ``g`` (:func:`graph`). :func:`make_backend` returns
the five functions of the backend interface (:mod:`pftlite.potentials.base`): forces and
stress by reverse mode, Hessian-vector products forward-over-reverse (``jvp`` of ``grad``),
their derivative (fc3) by a further ``jvp`` — exact —, and the training gradient through the
HVP. Public functions take and return NumPy arrays. float64 is enabled on import, and glibc's
malloc is asked to keep freed memory (:func:`pftlite.core.memory.retain_freed_memory`: XLA's
per-call buffers otherwise cost a page fault per page, ~4x the time on CPU).
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import jax

from pftlite.core.memory import ensure_map_headroom, retain_freed_memory

jax.config.update("jax_enable_x64", True)
retain_freed_memory()


def _use_compilation_cache() -> str | None:
    """JAX's persistent compilation cache in ``jax/`` of :func:`pftlite.core.cache.cache_root`
    (``~/.cache/pftlite/jax``) for compilations over 1 s, unless the user set a cache directory
    or ``$PFTLITE_JAX_CACHE=0``. Compiled code only: results do not depend on it."""
    import os

    from pftlite.core.cache import cache_root

    if os.environ.get("PFTLITE_JAX_CACHE", "1") == "0" or jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    root = cache_root()
    try:
        (root / "jax").mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # read-only home: compile every time
    jax.config.update("jax_compilation_cache_dir", str(root / "jax"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    return str(root / "jax")


COMPILATION_CACHE = _use_compilation_cache()

import jax.numpy as jnp
import numpy as np

from pftlite.potentials.loss import LossSpec, Targets, column_vectors, loss_value
from pftlite.structures.batch import Batch

#: what a JAX backend module exports, in this order (see :mod:`pftlite.potentials.base`)
EXPORTS = ("NAME", "EXACT_HVP_DERIVATIVE", "energy_forces_stress", "hvp", "hessian", "hvp_derivative", "loss_and_grad")

jax.tree_util.register_pytree_node(
    Targets,
    lambda t: ((t.energy, t.forces, t.stress, t.hessian_columns), None),
    lambda _, c: Targets(energy=c[0], forces=c[1], stress=c[2], columns=None, hessian_columns=c[3]),
)


def graph(batch: Batch) -> dict:
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


def edge_vectors(g, positions, strain):
    """Strained edge vectors r_ij (E, 3) Å: (1 + strain) (x_j - x_i + shift)."""
    r = positions[g["edge_j"]] - positions[g["edge_i"]] + g["edge_shift"]
    D = jnp.eye(3) + strain[g["edge_struct"]]
    return jnp.einsum("eab,eb->ea", D, r)


def _params(params):
    return {k: jnp.asarray(v) for k, v in params.items()}


def bucket(n: int, minimum: int = 8) -> int:
    """The padded size for ``n``: eighth-octave steps (at most 25 % padding), >= ``minimum``."""
    n = max(int(n), minimum)
    p = 1 << (n - 1).bit_length()
    q = max(p // 8, 1)
    return -(-n // q) * q


def padded_graph(batch: Batch, n_atoms: int, n_edges: int) -> dict:
    """:func:`graph` padded to ``n_atoms`` > N atoms and ``n_edges`` >= E edges: padding atoms
    (species 0, structure 0, ``atom_mask`` False) and padding edges from the first padding atom
    to itself with a shift of 2 r_cut + 1 Å, beyond the cutoff, so they carry nothing and have
    well-defined derivatives. Padding atoms' site energies are masked out."""
    N, E = batch.n_atoms, batch.n_edges
    if n_atoms <= N or n_edges < E:
        raise ValueError(f"padding {N} atoms / {E} edges to {n_atoms} / {n_edges}")

    def fill(a, n, value, dtype):
        out = np.full((n, *np.shape(a)[1:]), value, dtype=dtype)
        out[: len(a)] = a
        return jnp.asarray(out)

    shift = np.zeros((n_edges, 3))
    shift[:E] = batch.edge_shift
    shift[E:, 0] = 2.0 * batch.r_cut + 1.0
    return {
        "edge_i": fill(batch.edge_i, n_edges, N, np.int64),
        "edge_j": fill(batch.edge_j, n_edges, N, np.int64),
        "edge_shift": jnp.asarray(shift),
        "edge_struct": fill(batch.edge_struct, n_edges, 0, np.int64),
        "species": fill(batch.species, n_atoms, 0, np.int64),
        "atom_struct": fill(batch.atom_struct, n_atoms, 0, np.int64),
        "atom_mask": fill(np.ones(N, bool), n_atoms, False, bool),
        "volumes": jnp.asarray(batch.volumes),
    }


def make_backend(site_energies, trainable, column_bytes, name: str = "jax", pad: tuple | None = None) -> SimpleNamespace:
    """The backend functions for ``site_energies`` (see module docstring).

    trainable(spec) -> parameter keys the training gradient covers; column_bytes(spec, batch)
    -> bytes one vmapped HVP column holds (sizes the Hessian chunks, ~256 MB per chunk).
    pad: ``(min_atoms, min_edges)``: pad atoms and edges to :func:`bucket` sizes of at least
    these (:func:`padded_graph`), so structures of similar size share one compilation (for
    potentials whose compile is expensive), or to ``batch.pad_to`` when a batch carries one (a
    trainer's planned shapes, :mod:`pftlite.structures.padding`); None: no padding.
    """

    seen = set()

    def _compiles(kind, spec, g, x, *extra):
        """Before a call that may compile (a new function/shape key): keep the process's memory
        mappings under vm.max_map_count (:func:`pftlite.core.memory.ensure_map_headroom`)."""
        key = (kind, id(spec), x.shape, g["edge_i"].shape, *extra)
        if key not in seen:
            if ensure_map_headroom():
                seen.clear()
            seen.add(key)

    def _inputs(batch):
        """(graph, positions, padded atom count) of a batch."""
        if not pad:
            return graph(batch), jnp.asarray(batch.positions), batch.n_atoms
        n, e = batch.pad_to or (bucket(batch.n_atoms + 1, pad[0]), bucket(batch.n_edges, pad[1]))
        x = np.zeros((n, 3))
        x[: batch.n_atoms] = batch.positions
        return padded_graph(batch, n, e), jnp.asarray(x), n

    def _grow(a, n, value=0.0):
        """(..., N, 3) atom arrays -> (..., n, 3), padded with ``value``."""
        a = np.asarray(a, dtype=np.float64)
        if a.shape[-2] == n:
            return a
        out = np.full((*a.shape[:-2], n, 3), value)
        out[..., : a.shape[-2], :] = a
        return out

    def _energies(spec, params, g, positions, strain):
        eps = site_energies(spec, params, g, positions, strain)
        if pad:
            eps = jnp.where(g["atom_mask"], eps, 0.0)
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

    def energy_forces_stress(spec, params, batch: Batch) -> dict:
        """Energies (B,) eV, forces (N, 3) eV/Å, stress (B, 3, 3) eV/Å³ (ASE sign, (1/V) dE/dε)."""
        g, x, _ = _inputs(batch)
        _compiles("efs", spec, g, x, batch.n_structures)
        e, f, s = _efs_jit(spec, _params(params), g, x, batch.n_structures)
        return {"energy": np.asarray(e), "forces": np.asarray(f)[: batch.n_atoms], "stress": np.asarray(s)}

    def hvp(spec, params, batch: Batch, v) -> np.ndarray:
        """Hessian-vector product H v, (N, 3) eV/Å², one vector per structure (v: (N, 3) Å)."""
        g, x, n = _inputs(batch)
        v = jnp.asarray(_grow(np.asarray(v, dtype=np.float64).reshape(batch.n_atoms, 3), n))
        _compiles("hvp", spec, g, x, batch.n_structures)
        out = _hvp_jit(spec, _params(params), g, x, batch.n_structures, v)
        return np.asarray(out)[: batch.n_atoms]

    def _chunk(spec, batch, n, factor):
        per_col = factor * column_bytes(spec, batch)
        return max(1, min(n, int(256e6 // per_col)))

    def hessian(spec, params, batch: Batch, columns=None, chunk: int | None = None) -> np.ndarray:
        """Force constants (N, N, 3, 3) eV/Å² of one structure (or the ``columns`` (n, N, 3)),
        from vmapped HVPs in fixed-size chunks (one compilation)."""
        if batch.n_structures != 1:
            raise ValueError("hessian() takes a batch holding one structure")
        N = batch.n_atoms
        cols = np.arange(3 * N) if columns is None else np.asarray(columns, dtype=np.int64)
        if chunk is None:
            chunk = _chunk(spec, batch, len(cols), 1)
        g, x, n = _inputs(batch)
        _compiles("hessian", spec, g, x, chunk)
        p = _params(params)
        out = np.empty((len(cols), N, 3))
        for s in range(0, len(cols), chunk):
            c = cols[s : s + chunk]
            V = np.zeros((chunk, n, 3))  # fixed chunk shape: one compilation
            V[np.arange(len(c)), c // 3, c % 3] = 1.0
            out[s : s + len(c)] = np.asarray(_hvp_many_jit(spec, p, g, x, 1, jnp.asarray(V)))[: len(c), :N]
        if columns is not None:
            return out
        return out.reshape(N, 3, N, 3).transpose(2, 0, 3, 1).copy()

    @functools.partial(jax.jit, static_argnums=(0, 5, 6))
    def _loss_jit(spec, train, fixed, g, positions, n_struct, lspec, tg, v):
        ones = g["atom_mask"].astype(positions.dtype) if pad else jnp.ones(positions.shape[0])
        n_atoms = jax.ops.segment_sum(ones, g["atom_struct"], num_segments=n_struct)

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
        """Training loss, its gradient w.r.t. the trainable params, per-term values."""
        keys = trainable(spec)
        train = {k: jnp.asarray(params[k]) for k in keys}
        fixed = {k: jnp.asarray(v) for k, v in params.items() if k not in keys}
        g, x, n = _inputs(batch)
        tg = Targets(
            energy=jnp.asarray(targets.energy, dtype=jnp.float64),
            forces=jnp.asarray(_grow(targets.forces, n, np.nan)),
            stress=jnp.asarray(targets.stress, dtype=jnp.float64),
            columns=None,
            hessian_columns=jnp.asarray(_grow(targets.hessian_columns, n, np.nan)),
        )
        v = jnp.asarray(_grow(column_vectors(batch, targets.columns), n)) if lspec.hessian else None
        _compiles("loss", spec, g, x, batch.n_structures, lspec, tuple(sorted(keys)))
        total, grads, terms = _loss_jit(spec, train, fixed, g, x, batch.n_structures, lspec, tg, v)
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
        g, x, n = _inputs(batch)
        u = jnp.asarray(_grow(np.asarray(u, dtype=np.float64).reshape(N, 3), n))
        V = np.asarray(V, dtype=np.float64).reshape(-1, N, 3)
        if chunk is None:
            chunk = _chunk(spec, batch, len(V), 2)
        _compiles("hvp_derivative", spec, g, x, chunk)
        p = _params(params)
        out = np.empty_like(V)
        for s in range(0, len(V), chunk):
            c = V[s : s + chunk]
            block = np.zeros((chunk, n, 3))  # fixed chunk shape: one compilation
            block[: len(c), :N] = c
            res = _hvp_derivative_jit(spec, p, g, x, batch.n_structures, u, jnp.asarray(block))
            out[s : s + len(c)] = np.asarray(res)[: len(c), :N]
        return out

    return SimpleNamespace(
        NAME=name, EXACT_HVP_DERIVATIVE=True, energy_forces_stress=energy_forces_stress, hvp=hvp,
        hessian=hessian, hvp_derivative=hvp_derivative, loss_and_grad=loss_and_grad, energies=_energies,
    )  # fmt: skip
