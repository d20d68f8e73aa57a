"""Nequix (E(3)-equivariant message passing, Koker et al.) as a pftlite potential: its spec and
parameter layout. The maths is in :mod:`pftlite.potentials.nequix.jax_backend`, the file format
in :mod:`pftlite.potentials.nequix.nqx`.

Architecture (what a published ``.nqx`` header fixes; Nequix MP: 89 species, 4 layers, hidden
irreps ``128x0e + 64x1o + 32x2e + 32x3o``, l <= 3, 6 Å cutoff, 0.71 M parameters):

- edge r_ij = x_j - x_i (+ image shift), Bessel radial basis (2/r_c) sin(n π r / r_c) / r,
  n = 1..``radial_basis_size``, times the polynomial envelope of order ``radial_polynomial_p``;
  real spherical harmonics Y_l (component normalisation, l <= ``lmax``);
- node features start as the one-hot species (``S x 0e``); each layer: a linear map per irrep
  block, the "uvu" tensor product of the neighbour's features with Y(r_ij) weighted per output
  copy by a bias-free SiLU MLP of the radial basis, a sum over neighbours / sqrt(avg
  neighbours), a linear map plus a linear skip, an RMS layer norm per irrep block, and a gate
  (SiLU on scalars, SiLU gates on the l > 0 blocks; the last layer keeps scalars only);
- site energy = (linear readout of the 0e features) * ``scale`` + ``shift`` + atom_energies[s].

Parameters (one dict entry per file leaf, in :func:`leaf_layout` order): ``atom_energies`` (S,)
eV (fixed, as in nequix), and per layer ``L{i}.mlp{k}`` (radial MLP matrices), ``L{i}.lin1.{ir}``,
``L{i}.lin2.{ir}``, ``L{i}.skip.{ir}`` (e3nn linear weights (mul_in, mul_out), applied with
1/sqrt(mul_in)), ``L{i}.ln.{ir}`` (layer-norm weights), and ``readout`` (128, 1).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
from dataclasses import dataclass

from pftlite.core.errors import InputError
from pftlite.potentials.base import check_param_shapes

#: e3nn-jax's normalisation of SiLU (sqrt of E[silu(z)^2], z ~ N(0, 1)) as e3nn computes it in
#: float32 — the constant the published models were trained and are evaluated with (the exact
#: integral, 0.5964692111, or e3nn's float64 grid, 0.5964586854, move energies by up to 3e-4 eV)
SILU_NORM = 0.5964577198028564
IRREP = re.compile(r"^\s*(\d+)x(\d+)([eo])\s*$")
ARCH_KEYS = ("cutoff", "atomic_numbers", "hidden_irreps", "lmax", "n_layers", "radial_basis_size",
             "radial_mlp_size", "radial_mlp_layers", "radial_polynomial_p", "avg_n_neighbors", "shift",
             "scale", "index_weights", "layer_norm")  # fmt: skip


def parse_irreps(text: str) -> tuple[tuple[int, int, int], ...]:
    """``"128x0e + 64x1o"`` -> ((128, 0, +1), (64, 1, -1)): (multiplicity, l, parity)."""
    out = []
    for part in str(text).split("+"):
        m = IRREP.match(part)
        if not m:
            raise InputError(f"nequix spec: cannot read irreps {text!r}")
        out.append((int(m[1]), int(m[2]), 1 if m[3] == "e" else -1))
    return tuple(out)


def irreps_text(irreps) -> str:
    return " + ".join(f"{m}x{l}{'e' if p > 0 else 'o'}" for m, l, p in irreps)


def ir_name(l: int, p: int) -> str:
    return f"{l}{'e' if p > 0 else 'o'}"


@dataclass(frozen=True)
class NequixSpec:
    """Hyperparameters of a Nequix model (the architecture keys of a ``.nqx`` header).

    species: atomic numbers, sorted (channel = rank, as nequix). r_cut: cutoff, Å. hidden:
    irreps (mul, l, parity) of the hidden features. dtype: "float32" (as published) or "float64".
    """

    species: tuple[int, ...]
    r_cut: float = 6.0
    hidden: tuple = ((128, 0, 1), (64, 1, -1), (32, 2, 1), (32, 3, -1))
    lmax: int = 3
    n_layers: int = 4
    radial_basis_size: int = 8
    radial_mlp_size: int = 64
    radial_mlp_layers: int = 2
    radial_polynomial_p: float = 6.0
    avg_n_neighbors: float = 1.0
    shift: float = 0.0
    scale: float = 1.0
    dtype: str = "float32"

    def __post_init__(self):
        object.__setattr__(self, "species", tuple(int(z) for z in self.species))
        object.__setattr__(self, "hidden", tuple(tuple(int(v) for v in b) for b in self.hidden))
        if list(self.species) != sorted(set(self.species)) or not self.species:
            raise InputError("nequix spec: atomic_numbers must be distinct (they are used sorted)")
        for name in ("lmax", "n_layers", "radial_basis_size", "radial_mlp_size", "radial_mlp_layers"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise InputError(f"nequix spec: {name} must be a positive integer, got {v!r}")
        for name in ("r_cut", "radial_polynomial_p", "avg_n_neighbors", "scale"):
            v = getattr(self, name)
            if not isinstance(v, numbers.Real) or not math.isfinite(v) or v <= 0:
                raise InputError(f"nequix spec: {name} must be a positive number, got {v!r}")
        if self.dtype not in ("float32", "float64"):
            raise InputError(f"nequix spec: dtype must be float32 or float64, got {self.dtype!r}")
        if any(p != (-1) ** l for _, l, p in self.hidden) or self.hidden[0][1] != 0:
            raise InputError("nequix spec: hidden irreps must start with 0e and have parity (-1)^l")

    # --- per layer irreps -----------------------------------------------------------------
    @property
    def n_species(self) -> int:
        return len(self.species)

    def layer_in(self, i: int) -> tuple:
        return ((self.n_species, 0, 1),) if i == 0 else self.hidden

    def layer_out(self, i: int) -> tuple:
        """Output irreps of layer ``i`` after the gate (the last layer: scalars only)."""
        return (self.hidden[0],) if i == self.n_layers - 1 else self.hidden

    def n_gates(self, i: int) -> int:
        return sum(m for m, l, _ in self.layer_out(i) if l > 0)

    def tp_paths(self, i: int) -> list[tuple[int, int, int, int, int]]:
        """Tensor-product paths (input block, l1, l_sh, l_out, mul) of layer ``i`` in output
        order: grouped by output irrep (stable sort), generation order within a group."""
        outs = [(l, p) for _, l, p in self.layer_out(i)]
        made = []
        for b, (mul, l1, p1) in enumerate(self.layer_in(i)):
            for l2 in range(self.lmax + 1):
                for lo in range(abs(l1 - l2), l1 + l2 + 1):
                    if (lo, p1 * (-1) ** l2) in outs:
                        made.append((b, l1, l2, lo, mul))
        return sorted(made, key=lambda t: outs.index((t[3], (-1) ** t[3])))

    def tp_mul(self, i: int, l_out: int) -> int:
        return sum(t[4] for t in self.tp_paths(i) if t[3] == l_out)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["species"] = list(self.species)
        d["hidden"] = irreps_text(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d) -> NequixSpec:
        if not isinstance(d, dict):
            raise InputError(f"nequix spec: expected a mapping, got {type(d).__name__}")
        d = dict(d)
        if isinstance(d.get("hidden"), str):
            d["hidden"] = parse_irreps(d["hidden"])
        known = {f.name for f in dataclasses.fields(cls)}
        if set(d) - known:
            raise InputError(f"nequix spec: unknown keys {sorted(set(d) - known)}")
        return cls(**d)

    @classmethod
    def from_header(cls, h: dict, dtype: str = "float32", where: str = "header") -> NequixSpec:
        """The spec of a ``.nqx`` header (nequix's config JSON)."""
        missing = [k for k in ARCH_KEYS if k not in h]
        if missing:
            raise InputError(f"{where}: not a Nequix model header (missing {', '.join(missing)})")
        if h["index_weights"] or not h["layer_norm"]:
            raise InputError(f"{where}: index_weights=true or layer_norm=false Nequix models are not supported")
        return cls(
            species=tuple(sorted(int(z) for z in h["atomic_numbers"])), r_cut=float(h["cutoff"]),
            hidden=parse_irreps(h["hidden_irreps"]), lmax=int(h["lmax"]), n_layers=int(h["n_layers"]),
            radial_basis_size=int(h["radial_basis_size"]), radial_mlp_size=int(h["radial_mlp_size"]),
            radial_mlp_layers=int(h["radial_mlp_layers"]), radial_polynomial_p=float(h["radial_polynomial_p"]),
            avg_n_neighbors=float(h["avg_n_neighbors"]), shift=float(h["shift"]), scale=float(h["scale"]),
            dtype=dtype,
        )  # fmt: skip

    def to_header(self) -> dict:
        """The architecture keys of a ``.nqx`` header for this spec."""
        return {"cutoff": self.r_cut, "atomic_numbers": list(self.species), "hidden_irreps": irreps_text(self.hidden),
                "lmax": self.lmax, "n_layers": self.n_layers, "radial_basis_size": self.radial_basis_size,
                "radial_mlp_size": self.radial_mlp_size, "radial_mlp_layers": self.radial_mlp_layers,
                "radial_polynomial_p": self.radial_polynomial_p, "avg_n_neighbors": self.avg_n_neighbors,
                "shift": self.shift, "scale": self.scale, "index_weights": False, "layer_norm": True}  # fmt: skip


def leaf_layout(spec: NequixSpec) -> list[tuple[str, tuple[int, ...]]]:
    """(parameter key, shape) of every leaf, in the ``.nqx`` file's order (equinox's flatten
    order of nequix's model: atom energies, then per layer radial MLP, linear_1, linear_2, skip,
    layer norm, then the readout)."""
    out = [("atom_energies", (spec.n_species,))]
    for i in range(spec.n_layers):
        T = sum(t[4] for t in spec.tp_paths(i))
        sizes = [spec.radial_basis_size] + [spec.radial_mlp_size] * spec.radial_mlp_layers + [T]
        out += [(f"L{i}.mlp{k}", (sizes[k], sizes[k + 1])) for k in range(len(sizes) - 1)]
        ins = spec.layer_in(i)
        out += [(f"L{i}.lin1.{ir_name(l, p)}", (m, m)) for m, l, p in ins]
        post = pre_gate_irreps(spec, i)
        out += [(f"L{i}.lin2.{ir_name(l, p)}", (spec.tp_mul(i, l), m)) for m, l, p in post]
        have = {(l, p): m for m, l, p in ins}
        out += [(f"L{i}.skip.{ir_name(l, p)}", (have[(l, p)], m)) for m, l, p in post if (l, p) in have]
        out += [(f"L{i}.ln.{ir_name(l, p)}", (m,)) for m, l, p in post]
    out.append(("readout", (spec.hidden[0][0], 1)))
    return out


def pre_gate_irreps(spec: NequixSpec, i: int) -> tuple:
    """Irreps of layer ``i`` before its gate: the scalars plus one gate scalar per l > 0 copy."""
    outs = spec.layer_out(i)
    return ((outs[0][0] + spec.n_gates(i), 0, 1),) + tuple(outs[1:])



def trainable_keys(spec) -> tuple[str, ...]:
    """Every parameter but the per-species reference energies (fixed in nequix's training too)."""
    return tuple(k for k, _ in leaf_layout(spec) if k != "atom_energies")


def check_params(spec: NequixSpec, params: dict, source: str = "params") -> None:
    """Raise InputError on a missing, misshapen, extra or non-finite parameter."""
    want = dict(leaf_layout(spec))
    check_param_shapes(params, want, source)
