"""The κ_SRME benchmark run (Matbench Discovery protocol) for one model.

For every PhononDB-PBE material whose elements the model covers: relax the unit cell (fixed
symmetry), fc2 in the benchmark's fc2 supercell, fc3 in its fc3 supercell, Wigner RTA κ at
300 K with isotope scattering and a 1e6 µm boundary on the benchmark's q mesh, then SRD, SRE
and the mode-resolved SRME against the DFT reference (:mod:`pftlite.ksrme`); materials that
fail (relaxation, broken symmetry, imaginary modes) score 2. One JSON per material (written
atomically; a rerun with the same model and protocol skips it), ``summary.json`` at the end.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace

import click

from .errors import InputError

BENCHMARK_SETTINGS = {"temperatures": (300.0,), "isotope": True, "wigner": True, "boundary_mfp": 1e6}


def benchmark_protocol(protocol, material):
    """``protocol`` with the benchmark's conductivity settings and q mesh for ``material``."""
    s = replace(protocol.settings(), **BENCHMARK_SETTINGS, mesh=tuple(int(x) for x in material.q_mesh))
    return replace(protocol, kappa=s)


def score_one(spec, params, backend, material, protocol, progress=None) -> tuple[dict, dict, object]:
    """``(score row, record, KappaResult or None)`` for one material."""
    from . import ksrme
    from .kappa_eval import model_kappa

    rec, res = model_kappa(spec, params, backend, material.atoms, material.primitive_matrix,
                           material.fc2_supercell, material.fc3_supercell, protocol, progress)  # fmt: skip
    score = ksrme.score_material(material, rec if rec["status"] != "ok" else res)
    return score, rec, res


def run_benchmark(model, filters, protocol, backend, out_dir, plot):
    """CLI body of ``pftlite kappa MODEL --benchmark [FILTER...]``."""
    from ase.data import chemical_symbols

    from . import ksrme
    from .atomic import check_output
    from .cli import _load, resolve_model
    from .cli_kappa import _bar
    from .phonon_runs import file_sha256, write_json

    model_path = resolve_model(model)
    spec, params, _ = _load(model_path)
    out = check_output(out_dir or f"kappa-srme-{model_path.stem}", "--output", folder=True)
    materials = ksrme.select(ksrme.load_ksrme_reference(), [chemical_symbols[z] for z in spec.species])
    if filters:
        wanted = {f.lower() for f in filters}
        materials = [m for m in materials if {m.mp_id.lower(), m.name.lower(), m.desc.lower()} & wanted]
        if not materials:
            raise InputError(f"--benchmark: no covered material matches {', '.join(filters)}")
    sha = file_sha256(model_path)
    click.echo(f"κ_SRME: {len(materials)} material(s) covered by {model_path.name} "
               f"({', '.join(m.desc for m in materials)}) -> {out}/", err=True)  # fmt: skip
    scores = []
    for m in materials:
        prot = benchmark_protocol(protocol, m)
        key = json.dumps({"model": sha, "protocol": prot.to_dict(), "backend": backend}, sort_keys=True)
        path = out / f"{m.mp_id}.json"
        try:
            done = json.loads(path.read_text())
        except (OSError, ValueError):
            done = None
        if isinstance(done, dict) and done.get("key") == key:
            click.echo(f"{m.desc}: done before (same model and protocol), kept", err=True)
            scores.append(done["score"])
            continue
        t0 = time.perf_counter()
        score, rec, res = score_one(spec, params, backend, m, prot, progress=_bar(m.desc))
        row = {"key": key, "material": m.desc, "mp_id": m.mp_id, "score": score, "record": rec,
               "kappa": None if res is None else res.to_dict(modes=True), "seconds": time.perf_counter() - t0}  # fmt: skip
        write_json(path, row)
        if plot and res is not None:
            from .plots import plot_kappa_cumulative

            plot_kappa_cumulative({"DFT": m.as_result(), "model": res}, out / f"{m.mp_id}.png",
                                  title=f"{m.desc} ({m.mp_id}) κ at 300 K")  # fmt: skip
        scores.append(score)
        click.echo(f"{m.desc}: κ̄ DFT {m.kappa_tot_ave:.3f}, model {score['kappa_pred']:.3f} W/m-K, "
                   f"SRME {score['srme']:.3f} ({time.perf_counter() - t0:.1f} s)", err=True)  # fmt: skip
    summary = ksrme.summarize(scores)
    summary["rows"] = scores
    summary["model"] = {"path": str(model_path), "sha256": sha}
    write_json(out / "summary.json", summary)
    ksrme.print_table(scores, summary, file=sys.stdout)
    click.echo(f"wrote {out}/summary.json and one JSON per material")
    return summary

