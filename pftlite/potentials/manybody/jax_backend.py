"""JAX backend (CPU or GPU) of the built-in many-body model: derivatives by autodiff.

The site energy is written once here from the shared tables (:mod:`pftlite.potentials.manybody.basis`),
radial formula (:func:`~pftlite.potentials.manybody.basis.radial_basis`) and readout
(:func:`~pftlite.potentials.manybody.readout.site_energy`); every backend function
(forces, stress, HVPs, Hessians, exact fc3 rows, the training gradient) follows by autodiff
(:func:`pftlite.potentials.jax_autodiff.make_backend`), so the two backends cannot drift apart
silently. Public functions take and return NumPy arrays and have the Numba backend's signatures.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from pftlite.potentials.jax_autodiff import EXPORTS, edge_vectors, make_backend
from pftlite.potentials.manybody.basis import radial_basis
from pftlite.potentials.manybody.model import trainable_keys
from pftlite.potentials.manybody.readout import site_energy


def _site_energies(spec, params, g, positions, strain):
    """eps (N,) for positions (N, 3) and per-structure strain (B, 3, 3) (r -> (1 + strain) r)."""
    T = spec.tables
    K, L = T.n_radial, T.l_max
    L2 = (L + 1) ** 2
    r = edge_vectors(g, positions, strain)
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


def _column_bytes(spec, batch) -> float:
    """Each vmapped HVP column holds a few (E, K * L2) intermediates."""
    return 8 * max(batch.n_edges, 1) * spec.n_radial * (spec.l_max + 1) ** 2 * 4


_ops = make_backend(_site_energies, trainable_keys, _column_bytes, name="jax")
(NAME, EXACT_HVP_DERIVATIVE, energy_forces_stress, hvp, hessian, hvp_derivative, loss_and_grad) = (
    getattr(_ops, k) for k in EXPORTS
)
