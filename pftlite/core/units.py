"""Units and conversion factors, in one place.

pftlite works in eV, Å, atomic mass units (amu), and derived units:
forces eV/Å, force constants eV/Å², stress eV/Å³ (ASE sign convention: stress = (1/V) dE/dε,
negative when the cell wants to expand), frequencies THz.
"""

# Kilobar (VASP "in kB") to eV/Å³: 1 kbar = 0.1 GPa, 1 eV/Å³ = 160.21766208 GPa.
GPA_PER_EV_A3 = 160.21766208
KBAR_TO_EV_A3 = 0.1 / GPA_PER_EV_A3

# THz to kelvin (h ν / k_B), as used for ω_max in the MDR benchmark.
THZ_TO_K = 47.992430733662


def kbar_compressive_to_ase_stress(value):
    """VASP-style stress (kbar, positive = compressive) -> ASE stress (eV/Å³)."""
    return -value * KBAR_TO_EV_A3
