"""`pftlite kappa`: lattice thermal conductivity of a model against DFT data (phono3py
displacement datasets), of DFT data alone (``--dft-only``), or the κ_SRME benchmark set
(``--benchmark``). Registered on the main group by :mod:`pftlite.cli.app`."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from pftlite.cli.common import (
    BACKEND_OPTION,
    OneLineCommand,
    check_fc3_backend,
    fmt_value,
    load_model_arg,
    parse_floats,
    progress_bar,
    resolve_model,
    user_errors,
)
from pftlite.core.atomic import check_output
from pftlite.core.errors import InputError


def _mesh3(text: str) -> tuple[int, int, int] | None:
    """'19' -> (19, 19, 19); '19 19 15' -> as given; 'ref' -> None (the reference's mesh)."""
    if str(text).strip().lower() in ("ref", "reference", "auto"):
        return None
    vals = parse_floats(text, "--mesh")
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) != 3 or any(v < 1 or v != int(v) for v in vals):
        raise InputError(f"--mesh: one or three positive integers, got {text!r}")
    return tuple(int(v) for v in vals)


def _kappa_line(label: str, res, t_index: int) -> str:
    kp = np.asarray(res.kappa_P)[t_index]
    kc = np.asarray(res.kappa_C)[t_index]
    kt = np.asarray(res.kappa)[t_index]
    return (f"{label:<10}{kp[0, 0]:>10.2f}{kp[2, 2]:>10.2f}{kc[0, 0]:>9.3f}{kc[2, 2]:>9.3f}"
            f"{kt[0, 0]:>10.2f}{kt[2, 2]:>10.2f}{np.trace(kt) / 3:>10.2f}")  # fmt: skip


def _kappa_head() -> str:
    return (f"{'':<10}{'κP_xx':>10}{'κP_zz':>10}{'κC_xx':>9}{'κC_zz':>9}{'κ_xx':>10}{'κ_zz':>10}"
            f"{'κ̄':>10}   W/m-K")  # fmt: skip


@click.command(cls=OneLineCommand)
@click.argument("args", nargs=-1)
@click.option("--dft-only", is_flag=True, help="All arguments are references: DFT κ only, no model.")
@click.option("--benchmark", is_flag=True,
              help="κ_SRME benchmark: MODEL on the 103 PhononDB-PBE materials it covers "
                   "(further arguments filter by mp-id or name).")  # fmt: skip
@click.option("--output", "-o", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Output folder (default: kappa-<model name> or kappa-dft).")  # fmt: skip
@click.option("--mesh", default=None,
              help="q mesh: one or three integers [11]; --benchmark always uses each material's "
                   "reference mesh.")  # fmt: skip
@click.option("--temperatures", default="300", show_default=True, help="K, comma-separated.")
@click.option("--fc3", "fc3_method", type=click.Choice(["auto", "exact", "hvp-fd", "displacement"]),
              default="auto", show_default=True,
              help="Model fc3: exact third derivatives (jax), central differences of analytic HVPs, "
                   "or displaced-pair forces; auto = exact on jax, hvp-fd on numba.")  # fmt: skip
@click.option("--displacement", default=0.03, show_default=True, type=float,
              help="Pair displacement length for --fc3 displacement, Å.")  # fmt: skip
@click.option("--relax/--no-relax", default=True, show_default=True,
              help="Relax the unit cell with the model first (FIRE, cell filter, symmetry kept).")  # fmt: skip
@click.option("--fmax", default=0.005, show_default=True, type=float, help="Relaxation threshold, eV/Å.")
@click.option("--isotope/--no-isotope", default=True, show_default=True,
              help="Isotope scattering from natural abundances.")  # fmt: skip
@click.option("--wigner/--no-wigner", default=True, show_default=True,
              help="Add the Wigner coherence term κ_C to the particle term κ_P.")  # fmt: skip
@click.option("--boundary-mfp", default=None, type=float, help="Boundary mean free path, µm (off by default).")
@click.option("--sigma", default=None, type=float, help="Gaussian smearing width, THz (default: tetrahedron).")
@click.option("--plot/--no-plot", default=False, show_default=True,
              help="Cumulative κ vs frequency per material (PNG, needs matplotlib).")  # fmt: skip
@click.option("--nac/--no-nac", default=False, show_default=True,
              help="Non-analytical term correction of the fc2 phonons with the reference's Born charges "
              "(as phono3py; DFT and model alike); off in the κ_SRME protocol.")
@click.option("--r0-average/--no-r0-average", default=True, show_default=True,
              help="fc3 Fourier transform averaged over the three legs as lattice origin (phono3py's make_r0_average).")
@click.option("--overwrite", is_flag=True, help="Replace results already in the output folder.")
@click.option("--no-size-check", is_flag=True, help="Go ahead even if the estimated memory exceeds this machine's.")
@BACKEND_OPTION
@user_errors
def kappa(args, dft_only, benchmark, out_dir, mesh, temperatures, fc3_method, displacement, relax, fmax,
          isotope, wigner, boundary_mfp, sigma, plot, nac, r0_average, overwrite, no_size_check, backend):  # fmt: skip
    """Lattice thermal conductivity (RTA + Wigner coherence term), own solver.

    \b
    pftlite kappa MODEL REF...        model vs DFT for each phono3py dataset REF
    pftlite kappa --dft-only REF...   DFT κ of each REF
    pftlite kappa MODEL --benchmark   κ_SRME on the PhononDB-PBE set (materials MODEL covers)

    REF: a phono3py yaml (phono3py_disp.yaml + FORCES_FC3, phono3py_params*.yaml), its folder,
    or a dataset name such as phono3py/Si-PBEsol. Results: <out>/<name>.json (κ tensors,
    errors SRE/SRME, records), <name>-dft.json / <name>-model.json (per-mode data).
    """
    from pftlite.kappa.conductivity import KappaSettings
    from pftlite.kappa.evaluate import KappaProtocol, default_kappa_settings
    from pftlite.phonons.relax import RelaxSettings
    from pftlite.potentials.registry import check_backend_name

    backend = check_backend_name(backend) if backend is not None else None
    temps = tuple(parse_floats(temperatures, "--temperatures"))
    if not temps or not np.all(np.isfinite(temps)) or min(temps) <= 0:
        raise InputError(f"--temperatures: positive kelvin values, got {temperatures!r}")
    if displacement <= 0 or fmax <= 0:
        raise InputError("--displacement and --fmax must be positive")
    if sigma is not None and sigma <= 0:
        raise InputError("--sigma must be positive (THz)")
    if boundary_mfp is not None and boundary_mfp <= 0:
        raise InputError("--boundary-mfp must be positive (µm)")
    if plot:
        from pftlite.core.plotting import require_matplotlib

        require_matplotlib()
    if benchmark and nac:
        raise InputError("--benchmark: the κ_SRME references are without NAC; leave out --nac")
    if benchmark and mesh is not None and _mesh3(mesh) is not None:
        raise InputError("--benchmark uses each material's reference q mesh; leave out --mesh")
    mesh3 = _mesh3(mesh) if mesh is not None else default_kappa_settings().mesh
    fc3_method = None if fc3_method == "auto" else fc3_method
    settings = KappaSettings(temperatures=temps, mesh=mesh3 or (1, 1, 1), isotope=isotope, wigner=wigner,
                             boundary_mfp=boundary_mfp, sigma=sigma, r0_average=r0_average)  # fmt: skip
    protocol = KappaProtocol(relax=RelaxSettings(fmax=fmax) if relax else None, fc3=fc3_method,
                             distance=displacement, kappa=settings, nac=nac)  # fmt: skip
    t_index = temps.index(300.0) if 300.0 in temps else 0
    if benchmark:
        if dft_only or not args:
            raise InputError("--benchmark needs a MODEL (and no --dft-only)")
        from pftlite.cli.kappa_benchmark import run_benchmark

        run_benchmark(args[0], args[1:], protocol, backend, out_dir, plot)
        return
    if dft_only:
        model_path, refs_args = None, args
    else:
        if len(args) < 2:
            raise InputError("give MODEL and at least one REF (or --dft-only REF...)")
        model_path, refs_args = resolve_model(args[0]), args[1:]
    if mesh3 is None:
        raise InputError("--mesh ref: only with --benchmark (each material's reference mesh); "
                         "otherwise give one or three integers")
    _run_refs(model_path, refs_args, protocol, backend, out_dir, plot, t_index, not no_size_check, overwrite)


def mesh_memory(n_primitive: int, mesh) -> float:
    """Bytes the κ solver holds per q mesh: frequencies, eigenvectors (complex, nb²) and
    phase tables on every BZ point (≈ 1.1 × the grid), for n_primitive atoms."""
    nb = 3 * n_primitive
    n_bz = 1.1 * float(np.prod(mesh))
    return n_bz * (16 * nb * nb + 8 * nb + 16 * 27 * n_primitive)


def _run_refs(model_path, refs_args, protocol, backend, out_dir, plot, t_index, size_check=True,
              overwrite=False):
    from pftlite.datasets.phono3py_refs import load_fc3_reference
    from pftlite.kappa.evaluate import evaluate, reference_kappa
    from pftlite.phonons.runs import write_json

    pot = None
    if model_path is not None:
        pot = load_model_arg(model_path)
        ev = pot.on(backend)  # the model's default backend if not given; fails early if not offered
        backend = ev.backend
        check_fc3_backend(ev, protocol.fc3)
    refs = [load_fc3_reference(a) for a in refs_args]
    if size_check:
        from pftlite.core.sizes import check_memory

        mesh = protocol.settings().mesh
        for ref in refs:
            P = ref.primitive_matrix
            n_p = len(ref.unitcell) if P is None or isinstance(P, str) else max(
                1, round(len(ref.unitcell) * abs(np.linalg.det(np.asarray(P, float)))))  # fmt: skip
            check_memory(mesh_memory(n_p, mesh), f"--mesh {'x'.join(map(str, mesh))} for {ref.name} "
                         f"({n_p} atoms in the primitive cell)")  # fmt: skip
    if pot is not None:
        from ase.data import chemical_symbols

        for ref in refs:
            missing = sorted(set(ref.unitcell.numbers) - set(pot.species))
            if missing:
                names = ", ".join(chemical_symbols[z] for z in missing)
                raise InputError(f"{ref.source}: species {names} not in the model")
    out = check_output(out_dir or (f"kappa-{Path(model_path).stem}" if model_path else "kappa-dft"),
                       "--output", folder=True)
    if not overwrite:
        done = [f"{ref.name}.json" for ref in refs if (out / f"{ref.name}.json").exists()]
        if done:
            raise InputError(f"--output: {out}/ already holds {', '.join(done)} (use --overwrite to replace)")
    for ref in refs:
        if ref.nac_params is not None and not protocol.nac:
            click.echo(f"{ref.name}: the reference carries Born charges; NAC is not applied "
                       "(κ_SRME protocol; --nac to apply it)", err=True)  # fmt: skip
        elif protocol.nac and ref.nac_params is None:
            click.echo(f"{ref.name}: --nac, but the reference has no Born charges: NAC not applied", err=True)
    s = protocol.settings()
    click.echo(f"{len(refs)} material(s), mesh {'×'.join(map(str, s.mesh))}, T = "
               f"{', '.join(f'{t:g}' for t in s.temperatures)} K, isotope {'on' if s.isotope else 'off'}, "
               f"Wigner {'on' if s.wigner else 'off'}"
               + (f", model {Path(model_path).name} ({backend}, fc3 {protocol.fc3 or 'auto'})" if model_path else "")
               + f" -> {out}/", err=True)  # fmt: skip
    rows = []
    for ref in refs:
        if model_path is None:
            rec, res = reference_kappa(ref, protocol, progress=progress_bar(f"{ref.name} DFT"))
            result = {"name": ref.name, "source": ref.source, "status": "ok", "protocol": protocol.to_dict(dft_only=True),
                      "dft": rec, "dft_kappa": _kappa_record(res)}  # fmt: skip
            results = {"DFT": res}
        else:
            result = evaluate(pot, backend, ref, protocol, progress=progress_bar(ref.name))
            results = result.pop("_results")
            for label, res in results.items():
                result[f"{'dft' if label == 'DFT' else 'model'}_kappa"] = _kappa_record(res)
        for label, res in results.items():
            write_json(out / f"{ref.name}-{'dft' if label == 'DFT' else 'model'}.json", res.to_dict(modes=True))
        if plot:
            from pftlite.kappa.plots import plot_kappa_cumulative

            plot_kappa_cumulative(dict(results), out / f"{ref.name}.png",
                                  temperature_index=t_index, title=f"{ref.name} κ at "
                                  f"{protocol.settings().temperatures[t_index]:g} K")  # fmt: skip
            result["plot"] = f"{ref.name}.png"
        write_json(out / f"{ref.name}.json", result)
        rows.append((ref, result, results))
    click.echo(f"T = {protocol.settings().temperatures[t_index]:g} K")
    click.echo(_kappa_head())
    for ref, result, results in rows:
        click.echo(f"{ref.name}  ({result.get('status')}{': ' + result['reason'] if result.get('reason') else ''})")
        for label, res in results.items():
            click.echo(_kappa_line(label, res, t_index))
        e = result.get("errors")
        if e:
            click.echo(f"{'':<10}SRE {fmt_value(e['SRE'])}  SRD {fmt_value(e['SRD'], signed=True)}  SRME {fmt_value(e['SRME'])}")
    for ref, _, results in rows:
        per_mode = " + ".join(f"{ref.name}-{'dft' if label == 'DFT' else 'model'}.json" for label in results)
        click.echo(f"wrote {out}/{ref.name}.json (per mode: {per_mode})")


def _kappa_record(res) -> dict:
    """κ tensors per temperature (W/m-K) and counts; per-mode data stay in the *-dft/-model files."""
    return {
        "temperatures_K": np.asarray(res.temperatures).tolist(),
        "kappa_P": np.asarray(res.kappa_P).tolist(),
        "kappa_C": np.asarray(res.kappa_C).tolist(),
        "kappa": np.asarray(res.kappa).tolist(),
        "kappa_ave": [float(np.trace(k) / 3) for k in np.asarray(res.kappa)],
        "n_irreducible_q": len(res.weights),
        "seconds": res.seconds,
    }
