"""The model: a frozen spec of hyperparameters, a dict of parameter arrays, and its file format.

A model is the pair ``(spec, params)``:

- ``spec``: :class:`ModelSpec`, hashable, holds every shape-determining choice;
- ``params``: ``dict[str, np.ndarray]`` (a pytree), float64:

  ======== ============ =====================================================
  key      shape        meaning
  ======== ============ =====================================================
  e0       (S,)         per-species reference energy, eV
  mean     (F,)         feature shift (fixed normalisation, not trained)
  scale    (F,)         feature scale (fixed normalisation, not trained)
  w        (S, F)       linear readout weights, eV
  W1       (S, H, F)    MLP first layer (readout="mlp" only)
  b1       (S, H)       MLP bias
  w2       (S, H)       MLP output weights, eV
  ======== ============ =====================================================

Site energy of atom i with species s and features B_i:
``eps_i = e0[s] + w[s] . x_i (+ w2[s] . tanh(W1[s] x_i + b1[s]))``, ``x_i = scale * (B_i - mean)``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from pftlite.core.errors import InputError
from pftlite.potentials.base import check_param_shapes
from pftlite.potentials.manybody.basis import DescriptorTables, make_tables

TRAINABLE = ("e0", "w", "W1", "b1", "w2")


def trainable_keys(spec) -> tuple[str, ...]:
    """The parameter keys a training gradient covers for this spec (mean/scale are fixed)."""
    return TRAINABLE if spec.readout == "mlp" else ("e0", "w")


@dataclass(frozen=True)
class ModelSpec:
    """Hyperparameters of the many-body potential (see :mod:`pftlite.potentials.manybody.basis`).

    species: atomic numbers the model knows, in channel order.
    r_cut: cutoff radius, Å. envelope_power: p in (1 - r/r_cut)^p (>= 3 keeps Hessians and
    third derivatives continuous at the cutoff). readout: "linear" or "mlp"; hidden: MLP width.
    """

    species: tuple[int, ...]
    r_cut: float = 5.0
    n_radial: int = 8
    l_max: int = 4
    n_radial_4b: int = 4
    l_max_4b: int = 2
    envelope_power: int = 4
    readout: str = "linear"
    hidden: int = 16

    def __post_init__(self):
        import numbers

        if isinstance(self.species, list):
            object.__setattr__(self, "species", tuple(self.species))
        for name in ("n_radial", "l_max", "n_radial_4b", "l_max_4b", "envelope_power", "hidden"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise InputError(f"model spec: {name} must be an integer, got {v!r}")
        if isinstance(self.r_cut, bool) or not isinstance(self.r_cut, numbers.Real) or not np.isfinite(self.r_cut):
            raise InputError(f"model spec: r_cut must be a number (Å), got {self.r_cut!r}")
        if not isinstance(self.species, tuple) or not all(
            isinstance(z, numbers.Integral) and 1 <= z <= 118 for z in self.species
        ):
            raise InputError(f"model spec: species must be atomic numbers 1-118, got {self.species!r}")
        if not self.species:
            raise InputError("model spec: species list is empty")
        if len(set(self.species)) != len(self.species):
            raise InputError(f"model spec: duplicate species in {self.species}")
        if not (self.r_cut > 0.5):
            raise InputError(f"model spec: r_cut must exceed 0.5 Å, got {self.r_cut}")
        if self.n_radial < 1 or self.l_max < 0:
            raise InputError("model spec: need n_radial >= 1 and l_max >= 0")
        if self.n_radial_4b > self.n_radial or self.l_max_4b > self.l_max:
            raise InputError("model spec: 4-body basis must be within the 3-body basis")
        if self.envelope_power < 3:
            raise InputError("model spec: envelope_power must be >= 3 (C2 at the cutoff)")
        if self.readout not in ("linear", "mlp"):
            raise InputError(f"model spec: readout must be 'linear' or 'mlp', got {self.readout!r}")
        if self.hidden < 1:
            raise InputError(f"model spec: hidden must be >= 1, got {self.hidden}")

    @property
    def tables(self) -> DescriptorTables:
        return make_tables(
            len(self.species), self.n_radial, self.l_max, self.n_radial_4b, self.l_max_4b
        )

    @property
    def n_features(self) -> int:
        return self.tables.n_features

    def species_index(self, numbers, source: str = "structure") -> np.ndarray:
        """Map atomic numbers (N,) to channel indices (N,); unknown elements are an error."""
        from pftlite.structures.batch import species_index

        return species_index(self.species, numbers, source)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["species"] = list(self.species)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelSpec:
        if not isinstance(d, dict):
            raise InputError(f"model spec: expected a mapping of hyperparameters, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise InputError(f"model spec: unknown hyperparameters {sorted(unknown)}")
        d = dict(d)
        species = d.get("species")
        if not isinstance(species, (list, tuple)):
            raise InputError(f"model spec: species must be a list of atomic numbers, got {species!r}")
        d["species"] = tuple(species)
        return cls(**d)


def init_params(spec: ModelSpec, seed: int = 0, e0=None) -> dict:
    """Fresh parameters: zero linear weights, small random MLP, unit feature scaling.

    e0: optional per-species reference energies (S,), eV. seed: explicit RNG seed.
    """
    rng = np.random.default_rng(seed)
    S, F, H = len(spec.species), spec.n_features, spec.hidden
    p = {
        "e0": np.zeros(S) if e0 is None else np.asarray(e0, dtype=np.float64).copy(),
        "mean": np.zeros(F),
        "scale": np.ones(F),
        "w": np.zeros((S, F)),
    }
    if spec.readout == "mlp":
        p["W1"] = rng.normal(0.0, 1.0 / np.sqrt(F), size=(S, H, F))
        p["b1"] = np.zeros((S, H))
        p["w2"] = rng.normal(0.0, 0.01, size=(S, H))
    return p


def check_params(spec: ModelSpec, params: dict, source: str = "params") -> None:
    """Raise InputError if params do not have the shapes the spec implies, or hold NaN."""
    S, F, H = len(spec.species), spec.n_features, spec.hidden
    want = {"e0": (S,), "mean": (F,), "scale": (F,), "w": (S, F)}
    if spec.readout == "mlp":
        want.update({"W1": (S, H, F), "b1": (S, H), "w2": (S, H)})
    check_param_shapes(params, want, source)
