"""Nequix as a potential family (jax backend only; its own file format, ``.nqx``)."""

from __future__ import annotations

import numpy as np

from pftlite.potentials.base import Family
from pftlite.potentials.nequix.model import NequixSpec, check_params, irreps_text, trainable_keys


def describe(spec: NequixSpec, params: dict) -> dict:
    n = int(sum(np.size(v) for v in params.values()))
    n_train = int(sum(np.size(params[k]) for k in trainable_keys(spec)))
    return {"spec": spec.to_dict(), "n_parameters": n, "n_trainable_parameters": n_train,
            "summary": f"Nequix, {spec.n_layers} layers of {irreps_text(spec.hidden)}, l <= {spec.lmax}, "
                       f"r_cut {spec.r_cut:g} Å, {spec.n_species} species, {spec.dtype}"}  # fmt: skip


NEQUIX = Family(
    kind="nequix",
    spec_type=NequixSpec,
    backends={"jax": "pftlite.potentials.nequix.jax_backend"},
    trainable=trainable_keys,
    check_params=check_params,
    describe=describe,
)
