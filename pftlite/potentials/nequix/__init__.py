"""Nequix (E(3)-equivariant message passing) on e3nn-jax: pretrained foundation models
(``nequix-mp-1``, ``nequix-mp-1-pft``, ``nequix-mp-1-pft-nocotrain``) as pftlite potentials,
read from and written to nequix's ``.nqx`` files."""
