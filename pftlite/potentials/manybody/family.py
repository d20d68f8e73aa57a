"""The built-in many-body model as a potential family (numba and jax backends)."""

from __future__ import annotations

import numpy as np

from pftlite.potentials.base import Family
from pftlite.potentials.manybody.model import ModelSpec, check_params, trainable_keys


def describe(spec: ModelSpec, params: dict) -> dict:
    """What ``pftlite info`` shows: spec, feature counts by body order, trainable size."""
    body = np.bincount(spec.tables.feature_body, minlength=5)
    n_train = int(sum(np.size(params[k]) for k in trainable_keys(spec)))
    return {
        "spec": spec.to_dict(),
        "n_features": int(spec.n_features),
        "features_by_body_order": {"2": int(body[2]), "3": int(body[3]), "4": int(body[4])},
        "n_trainable_parameters": n_train,
        "summary": f"{spec.n_features} features x {len(spec.species)} species ({spec.readout} readout)",
    }


def least_squares(spec, structures, weights, progress=None, normalise_on=None, seed: int = 0) -> dict:
    """See :func:`pftlite.potentials.manybody.linear_fit.least_squares` (imported on use: Numba)."""
    from pftlite.potentials.manybody.linear_fit import least_squares as fit

    return fit(spec, structures, weights, progress, normalise_on, seed)


MANYBODY = Family(
    kind="manybody",
    spec_type=ModelSpec,
    backends={
        "numba": "pftlite.potentials.manybody.numba_backend",
        "jax": "pftlite.potentials.manybody.jax_backend",
    },
    trainable=trainable_keys,
    check_params=check_params,
    describe=describe,
    least_squares=least_squares,
    is_linear=lambda spec: spec.readout == "linear",
)
