"""JAX backend of the Morse pair potential: the energy by hand, everything else by autodiff
(:func:`pftlite.potentials.jax_autodiff.make_backend`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from pftlite.potentials.jax_autodiff import EXPORTS, edge_vectors, make_backend
from pftlite.potentials.pair.model import pair_table, phi, trainable_keys


def _site_energies(spec, params, g, positions, strain):
    """eps (N,): e0 of the atom plus half of each of its bonds (see pftlite.potentials.pair.model)."""
    r = edge_vectors(g, positions, strain)
    rn = jnp.sqrt(jnp.sum(r * r, axis=1))
    k = jnp.asarray(pair_table(len(spec.species)))[g["species"][g["edge_i"]], g["species"][g["edge_j"]]]
    e = phi(rn, params["D"][k], params["alpha"][k], params["r0"][k], spec.r_cut, xp=jnp)
    half = jax.ops.segment_sum(0.5 * e, g["edge_i"], num_segments=positions.shape[0])
    return params["e0"][g["species"]] + half


def _column_bytes(spec, batch) -> float:
    return 8.0 * 64 * max(batch.n_edges, 1)


_ops = make_backend(_site_energies, trainable_keys, _column_bytes, name="jax")
(NAME, EXACT_HVP_DERIVATIVE, energy_forces_stress, hvp, hessian, hvp_derivative, loss_and_grad) = (
    getattr(_ops, k) for k in EXPORTS
)
