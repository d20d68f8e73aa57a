"""``pftlite kappa MODEL --benchmark``: the κ_SRME benchmark run, with progress and tables."""

from __future__ import annotations

import json
import sys
import time

import click

from pftlite.cli.common import check_fc3_backend, load_model_arg, progress_bar, resolve_model
from pftlite.core.errors import InputError
from pftlite.kappa.benchmark import benchmark_protocol, score_one


def run_benchmark(model, filters, protocol, backend, out_dir, plot):
    """CLI body of ``pftlite kappa MODEL --benchmark [FILTER...]``."""
    from ase.data import chemical_symbols

    from pftlite.core.atomic import check_output
    from pftlite.kappa import ksrme
    from pftlite.phonons.runs import file_sha256, write_json

    model_path = resolve_model(model)
    pot = load_model_arg(model_path)
    ev = pot.on(backend)  # the model's default backend if not given; fails early if not offered
    backend = ev.backend
    check_fc3_backend(ev, protocol.fc3)
    out = check_output(out_dir or f"kappa-srme-{model_path.stem}", "--output", folder=True)
    materials = ksrme.select(ksrme.load_ksrme_reference(), [chemical_symbols[z] for z in pot.species])
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
        score, rec, res = score_one(pot, backend, m, prot, progress=progress_bar(m.desc))
        row = {"key": key, "material": m.desc, "mp_id": m.mp_id, "score": score, "record": rec,
               "kappa": None if res is None else res.to_dict(modes=True), "seconds": time.perf_counter() - t0}  # fmt: skip
        write_json(path, row)
        if plot and res is not None:
            from pftlite.kappa.plots import plot_kappa_cumulative

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

