"""Conformance checks any (potential, backend) must pass (shipped with the interface).

:func:`check_potential` runs them all on one periodic structure:

- derivatives (:func:`check_derivatives`): forces = -dE/dx, stress = (1/V) dE/dε, HVP =
  d(-F)/dx along random directions, all by finite-difference *convergence* sweeps (not one
  magic step); a symmetric Hessian obeying the acoustic sum rule; hessian() columns equal
  hvp() with one-hot vectors; hvp_derivative = d(HVP)/dx (convergence sweep);
- parameter gradients (:func:`check_parameter_gradients`): loss_and_grad's gradient = the
  derivative of its loss along a random direction in the trainable parameters, with energy,
  force, stress and Hessian-column terms;
- invariances (:func:`check_invariances`): energy, forces, stress and Hessian under a rigid
  translation, a rotation of positions and cell, and a permutation of the atoms;
- supercell consistency (:func:`check_supercell`): a 2x1x1 supercell has twice the energy,
  the same stress, tiled forces and the same frequencies at commensurate q;
- save/load round trip (:func:`check_round_trip`): bitwise equal predictions after a file.
"""

from __future__ import annotations

import numpy as np


def fd_convergence(f, df_dir, hs=(1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5), atol=1e-12):
    """Central differences (f(h) - f(-h)) / 2h against the analytic directional derivative.

    f: callable of the step h returning a scalar or array; df_dir: analytic value at h=0.
    Returns (errors per h, passed). Passes when the error falls by >= 1e3 from the largest
    step to the best one, or the best error is at rounding level (1e-9 relative, or below
    ``atol`` absolute: a derivative that vanishes by symmetry has nothing to converge).
    """
    df_dir = np.asarray(df_dir, dtype=np.float64)
    scale = max(float(np.max(np.abs(df_dir))), 1e-12)
    errs = []
    for h in hs:
        fd = (np.asarray(f(h)) - np.asarray(f(-h))) / (2 * h)
        errs.append(float(np.max(np.abs(fd - df_dir))))
    best = min(errs)
    passed = best <= 1e-3 * errs[0] or best <= 1e-9 * scale or best <= atol
    return errs, passed


def _strained(batch, eps):
    """Batch with positions and image shifts deformed by (1 + eps) (same neighbour graph)."""
    from dataclasses import replace

    D = np.eye(3) + eps
    return replace(
        batch,
        positions=batch.positions @ D.T,
        edge_shift=batch.edge_shift @ D.T,
        cells=batch.cells @ D.T,
        volumes=batch.volumes * np.linalg.det(D),
    )


def check_derivatives(ev, batch, seed: int = 0, hessian: bool = True) -> dict:
    """Position and strain derivatives of ``ev`` (an :class:`~pftlite.potentials.base.Evaluator`)
    on ``batch``; AssertionError naming the first failure. Returns the FD error sweeps."""
    rng = np.random.default_rng(seed)
    report = {}
    out = ev.energy_forces_stress(batch)
    x0 = batch.positions
    d = rng.normal(size=x0.shape)

    def energy(h):
        return ev.energy_forces_stress(batch.with_positions(x0 + h * d))["energy"]

    fd_dir = np.einsum("ia,ia->i", out["forces"], d)
    errs, ok = fd_convergence(
        energy, -np.bincount(batch.atom_struct, fd_dir, minlength=batch.n_structures)
    )
    report["forces"] = errs
    assert ok, f"forces are not -dE/dx: FD errors {errs}"

    sym = rng.normal(size=(3, 3))
    sym = 0.5 * (sym + sym.T)

    def strained_energy(h):
        return ev.energy_forces_stress(_strained(batch, h * sym))["energy"]

    want = np.einsum("bij,ij->b", out["stress"], sym) * batch.volumes
    errs, ok = fd_convergence(strained_energy, want)
    report["stress"] = errs
    assert ok, f"stress is not (1/V) dE/deps: FD errors {errs}"

    v = rng.normal(size=x0.shape)
    hv = ev.hvp(batch, v)

    def minus_forces(h):
        return -ev.energy_forces_stress(batch.with_positions(x0 + h * v))["forces"]

    errs, ok = fd_convergence(minus_forces, hv)
    report["hvp"] = errs
    assert ok, f"HVP is not the derivative of -forces: FD errors {errs}"

    if hessian and batch.n_structures == 1:
        H = ev.hessian(batch)
        N = batch.n_atoms
        Hm = H.transpose(0, 2, 1, 3).reshape(3 * N, 3 * N)
        scale = np.abs(Hm).max()
        asym = np.abs(Hm - Hm.T).max()
        asr = np.abs(H.sum(axis=1)).max()
        report["hessian_asym"] = asym
        report["hessian_asr"] = asr
        assert asym <= 1e-10 * scale, f"Hessian not symmetric: {asym:.3g} (scale {scale:.3g})"
        assert asr <= 1e-10 * scale, f"acoustic sum rule violated: {asr:.3g} (scale {scale:.3g})"
        assert np.allclose(Hm @ v.ravel(), hv.ravel(), rtol=1e-10, atol=1e-12 * scale), (
            "hessian() disagrees with hvp()"
        )
        cols = rng.choice(3 * N, size=min(3, 3 * N), replace=False)
        Hc = ev.hessian(batch, columns=cols)
        assert np.allclose(Hc.reshape(len(cols), -1), Hm[:, cols].T, rtol=1e-12, atol=1e-12 * scale)

        # fc3 rows: d/de [H(x + e u) w] against central differences of HVPs at x +- h u
        u = rng.normal(size=x0.shape)
        u /= np.linalg.norm(u)
        w = rng.normal(size=x0.shape)
        dhw = ev.hvp_derivative(batch, u, w[None])[0]
        errs, ok = fd_convergence(lambda h: ev.hvp(batch.with_positions(x0 + h * u), w), dhw,
                                  hs=(3e-2, 1e-2, 3e-3, 1e-3, 3e-4))  # fmt: skip
        report["hvp_derivative"] = errs
        if ev.exact_hvp_derivative:
            assert ok, f"hvp_derivative is not the derivative of the HVP: FD errors {errs}"
        else:  # itself a central difference (step 1e-3 Å): agreement to O(h²), no convergence
            assert min(errs) <= 1e-4 * max(np.abs(dhw).max(), 1e-12), f"hvp_derivative off: FD errors {errs}"
    return report


def _random_targets(ev, batch, rng):
    """Labels of the size of ``batch`` (predictions + noise) and one Hessian column each."""
    from pftlite.potentials.loss import Targets

    out = ev.energy_forces_stress(batch)
    cols = np.array([rng.integers(3 * n) for n in batch.n_atoms_per_structure], dtype=np.int64)
    return Targets(
        energy=out["energy"] + rng.normal(scale=0.1, size=batch.n_structures) * batch.n_atoms_per_structure,
        forces=out["forces"] + rng.normal(scale=0.1, size=out["forces"].shape),
        stress=out["stress"] + rng.normal(scale=0.01, size=out["stress"].shape),
        columns=cols,
        hessian_columns=rng.normal(scale=1.0, size=(batch.n_atoms, 3)),
    )


def check_parameter_gradients(ev, batch, seed: int = 0) -> dict:
    """``loss_and_grad``'s gradient against central differences of its own loss along a random
    direction of the trainable parameters (MSE energy/forces/stress + MSE Hessian column; the
    MAE kinks are avoided so the FD converges). AssertionError on failure; returns the sweep."""
    from pftlite.potentials.loss import LossSpec

    rng = np.random.default_rng(seed)
    pot = ev.potential
    lspec = LossSpec(energy=1.0, forces=1.0, stress=1.0, hessian=1.0, kind="mse", hessian_kind="mse")
    tg = _random_targets(ev, batch, rng)
    keys = pot.trainable
    d = {k: rng.normal(size=np.shape(pot.params[k])) * (np.abs(pot.params[k]).mean() + 1e-3) for k in keys}
    loss0, grads, _ = ev.loss_and_grad(batch, tg, lspec)
    assert set(grads) == set(keys), f"gradient keys {sorted(grads)} != trainable {sorted(keys)}"
    directional = sum(float(np.sum(np.asarray(grads[k]) * d[k])) for k in keys)

    def loss_at(h):
        p = {**pot.params, **{k: pot.params[k] + h * d[k] for k in keys}}
        return ev.loss_and_grad(batch, tg, lspec, params=p)[0]

    errs, ok = fd_convergence(loss_at, directional, hs=(1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6))
    assert ok, f"parameter gradient is not d loss / d params: FD errors {errs}"
    return {"param_grad": errs, "loss": loss0}


def _rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def check_invariances(ev, atoms, seed: int = 0, rtol: float = 1e-9) -> dict:
    """Translation, rotation and permutation of ``atoms`` (ase.Atoms): energy invariant,
    forces/stress/Hessian transformed covariantly. AssertionError on failure."""
    from pftlite.structures.batch import make_batch

    rng = np.random.default_rng(seed)
    pot = ev.potential

    def calc(a):
        b = make_batch([a], pot)
        return ev.energy_forces_stress(b), ev.hessian(b)

    (o, H) = calc(atoms)
    e_scale = max(abs(float(o["energy"][0])), 1.0)
    f_scale = max(np.abs(o["forces"]).max(), 1e-3)
    s_scale = max(np.abs(o["stress"]).max(), 1e-5)
    h_scale = max(np.abs(H).max(), 1e-3)
    report = {}

    t = atoms.copy()
    t.positions += rng.normal(size=3)
    ot, Ht = calc(t)
    report["translation"] = float(np.abs(ot["forces"] - o["forces"]).max())
    assert abs(ot["energy"][0] - o["energy"][0]) <= rtol * e_scale, "energy changes under translation"
    assert np.allclose(ot["forces"], o["forces"], atol=rtol * f_scale), "forces change under translation"
    assert np.allclose(Ht, H, atol=rtol * h_scale), "Hessian changes under translation"

    R = _rotation(rng)
    r = atoms.copy()
    r.set_cell(atoms.cell[:] @ R.T, scale_atoms=False)
    r.positions = atoms.positions @ R.T
    orr, Hr = calc(r)
    report["rotation"] = float(np.abs(orr["forces"] - o["forces"] @ R.T).max())
    assert abs(orr["energy"][0] - o["energy"][0]) <= rtol * e_scale, "energy changes under rotation"
    assert np.allclose(orr["forces"], o["forces"] @ R.T, atol=rtol * f_scale), "forces do not rotate"
    assert np.allclose(orr["stress"][0], R @ o["stress"][0] @ R.T, atol=rtol * s_scale), "stress does not rotate"
    assert np.allclose(Hr, np.einsum("ac,ijcd,bd->ijab", R, H, R), atol=rtol * h_scale), "Hessian does not rotate"

    perm = rng.permutation(len(atoms))
    pa = atoms[perm]
    op, Hp = calc(pa)
    report["permutation"] = float(np.abs(op["forces"] - o["forces"][perm]).max())
    assert abs(op["energy"][0] - o["energy"][0]) <= rtol * e_scale, "energy changes under permutation"
    assert np.allclose(op["forces"], o["forces"][perm], atol=rtol * f_scale), "forces do not permute"
    assert np.allclose(Hp, H[np.ix_(perm, perm)], atol=rtol * h_scale), "Hessian does not permute"
    return report


def check_supercell(ev, atoms, rtol: float = 1e-9) -> dict:
    """A 2x1x1 supercell of ``atoms``: energy x2, same stress, tiled forces, and the Γ-point
    Hessian sums of the supercell equal twice the unit cell's."""
    from pftlite.structures.batch import make_batch

    pot = ev.potential
    N = len(atoms)
    big = atoms.repeat((2, 1, 1))
    o1 = ev.energy_forces_stress(make_batch([atoms], pot))
    b2 = make_batch([big], pot)
    o2 = ev.energy_forces_stress(b2)
    e_scale = max(abs(float(o1["energy"][0])), 1.0)
    assert abs(o2["energy"][0] - 2 * o1["energy"][0]) <= rtol * e_scale, "supercell energy is not 2x"
    assert np.allclose(o2["stress"][0], o1["stress"][0], atol=rtol * max(np.abs(o1["stress"]).max(), 1e-5)), \
        "supercell stress differs"
    f_scale = max(np.abs(o1["forces"]).max(), 1e-3)
    assert np.allclose(o2["forces"], np.tile(o1["forces"], (2, 1)), atol=rtol * f_scale), "supercell forces not tiled"
    H1 = ev.hessian(make_batch([atoms], pot))
    H2 = ev.hessian(b2)
    gamma = H2.reshape(2, N, 2, N, 3, 3).sum(axis=2)  # sum over the images of j: the q = 0 block
    h_scale = max(np.abs(H1).max(), 1e-3)
    assert np.allclose(gamma[0], H1, atol=1e-8 * h_scale) and np.allclose(gamma[1], H1, atol=1e-8 * h_scale), \
        "supercell Hessian at Γ differs from the unit cell's"
    return {"energy_ratio": float(o2["energy"][0] / o1["energy"][0]) if o1["energy"][0] else 2.0}


def check_round_trip(ev, atoms, folder) -> dict:
    """Save the potential to ``folder`` and load it back: same kind, spec, parameters (bitwise)
    and predictions (bitwise)."""
    from pathlib import Path

    from pftlite.potentials.files import load_potential, save_potential
    from pftlite.structures.batch import make_batch

    pot = ev.potential
    path = save_potential(Path(folder) / f"round-trip-{pot.kind}.npz", pot)
    back = load_potential(path)
    assert back.kind == pot.kind and back.spec == pot.spec, "kind or spec changed in the file"
    assert set(back.params) == set(pot.params) and all(
        np.array_equal(back.params[k], pot.params[k]) for k in pot.params
    ), "parameters changed in the file"
    assert back.fingerprint() == pot.fingerprint(), "fingerprint changed in the file"
    b = make_batch([atoms], pot)
    o1, o2 = ev.energy_forces_stress(b), back.on(ev.backend).energy_forces_stress(b)
    assert all(np.array_equal(o1[k], o2[k]) for k in o1), "predictions differ after save/load"
    return {"file": str(path)}


def check_potential(potential, backend: str, atoms, folder, seed: int = 0) -> dict:
    """Every check above for ``potential`` on ``backend`` with one periodic ``atoms`` (a few
    atoms; it is rattled so no derivative vanishes by symmetry); ``folder``: where the
    round-trip file goes. AssertionError names the first failure; returns the report."""
    from pftlite.structures.batch import make_batch

    rng = np.random.default_rng(seed)
    a = atoms.copy()
    a.calc = None
    a.positions = a.positions + rng.normal(scale=0.05, size=a.positions.shape)
    ev = potential.on(backend)
    batch = make_batch([a], potential)
    report = {"derivatives": check_derivatives(ev, batch, seed=seed)}
    report["gradients"] = check_parameter_gradients(ev, batch, seed=seed)
    report["invariances"] = check_invariances(ev, a, seed=seed)
    report["supercell"] = check_supercell(ev, a)
    report["round_trip"] = check_round_trip(ev, a, folder)
    return report
