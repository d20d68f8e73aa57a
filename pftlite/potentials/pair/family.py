"""The Morse pair potential as a potential family (jax backend only)."""

from __future__ import annotations

import numpy as np

from pftlite.potentials.base import Family
from pftlite.potentials.pair.model import PairSpec, check_params, trainable_keys


def describe(spec: PairSpec, params: dict) -> dict:
    n = int(sum(np.size(params[k]) for k in trainable_keys(spec)))
    return {"spec": spec.to_dict(), "n_pairs": spec.n_pairs, "n_trainable_parameters": n,
            "summary": f"Morse pair potential, {spec.n_pairs} pair type(s), r_cut {spec.r_cut} Å"}  # fmt: skip


PAIR = Family(
    kind="pair",
    spec_type=PairSpec,
    backends={"jax": "pftlite.potentials.pair.jax_backend"},
    trainable=trainable_keys,
    check_params=check_params,
    describe=describe,
)
