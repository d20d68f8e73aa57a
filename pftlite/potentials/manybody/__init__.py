"""The built-in many-body model: 2-, 3- and 4-body invariants of an atom's neighbourhood with a
linear or MLP readout, on a Numba backend (hand-written derivatives) and a JAX one (autodiff)."""
