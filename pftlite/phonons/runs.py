"""Run the phonon benchmark over a set of materials: one result file per material, written
atomically; reruns skip materials already done with the same model and protocol; work spread
over processes (spawned, so each worker has its own Numba thread pool).

Files in the output folder: ``<name>.json`` (see :func:`pftlite.phonons.mdr.evaluate`),
``<name>.png`` (band structure + DOS, with ``plot=True``), ``summary.json`` and
``summary.csv``.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from pftlite.core.atomic import atomic_path
from pftlite.phonons.mdr import METRICS, PhononProtocol, evaluate, summarize


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items() if not str(k).startswith("_")}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def write_json(path, data) -> None:
    """JSON (NaN -> null, numpy -> lists) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(_jsonable(data), indent=1) + "\n")


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def run_key(model_sha: str, protocol: PhononProtocol) -> str:
    """Identifies (model, protocol): a result with the same key is not recomputed."""
    blob = json.dumps({"model": model_sha, "protocol": protocol.to_dict()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_done(path: Path, key: str) -> dict | None:
    """A previous result at ``path`` with the same key, else None (missing, other key, or
    unreadable — an interrupted write never leaves a partial file, but be safe)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("key") == key else None


def run_one(model_path, ref, protocol: PhononProtocol, backend: str, out_dir, key: str,
            model_info: dict, plot: bool = False) -> dict:  # fmt: skip
    """Evaluate one material and write ``<out_dir>/<name>.json`` (+ ``.png``). Returns the
    result (without phonopy objects). Runs in a worker process or in-process."""
    from pftlite.potentials.files import load_potential

    res = evaluate(load_potential(model_path), backend, ref, protocol, keep=plot)
    res["key"] = key
    res["run"] = {"model": model_info, "backend": backend, "versions": _versions()}
    out_dir = Path(out_dir)
    if plot:
        from pftlite.phonons.plots import plot_bands_dos

        phs = res.pop("_phonopy")
        title = f"{ref.name} {res['formula']}: {Path(model_path).stem} vs DFT"
        plot_bands_dos(phs, out_dir / f"{ref.name}.png", title=title)
        res["plot"] = f"{ref.name}.png"
    write_json(out_dir / f"{ref.name}.json", res)
    return _jsonable(res)


def _versions() -> dict:
    import phonopy
    import spglib

    from pftlite import __version__

    return {"pftlite": __version__, "phonopy": phonopy.__version__, "spglib": spglib.__version__}


def run_set(model_path, refs, protocol: PhononProtocol, backend: str, out_dir,
            jobs: int = 1, plot: bool = False, overwrite: bool = False, progress=None):  # fmt: skip
    """Evaluate every reference; returns ``(results, summary)``, results in the order of
    ``refs``, summary as written to ``summary.json``.

    ``progress(result, skipped: bool)`` is called as each material finishes.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sha = file_sha256(model_path)
    key = run_key(sha, protocol)
    model_info = {"path": str(model_path), "sha256": sha}
    results: dict[str, dict] = {}
    todo = []
    for ref in refs:
        done = None if overwrite else load_done(out_dir / f"{ref.name}.json", key)
        if done is not None and (not plot or (out_dir / f"{ref.name}.png").exists()):
            results[ref.name] = done
            if progress:
                progress(done, True)
        else:
            todo.append(ref)
    args = [(model_path, ref, protocol, backend, out_dir, key, model_info, plot) for ref in todo]
    if jobs <= 1 or len(todo) <= 1:
        for a in args:
            results[a[1].name] = r = run_one(*a)
            if progress:
                progress(r, False)
    else:
        import multiprocessing as mp

        env = {"NUMBA_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // jobs))}
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)  # inherited by the spawned workers
        try:
            with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
                futures = {pool.submit(run_one, *a): a[1].name for a in args}
                for fut in as_completed(futures):
                    results[futures[fut]] = r = fut.result()
                    if progress:
                        progress(r, False)
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    ordered = [results[ref.name] for ref in refs]
    return ordered, write_summary(ordered, out_dir, protocol)


def write_summary(results: list[dict], out_dir, protocol: PhononProtocol) -> dict:
    """``summary.json`` (per-material rows + MAE) and ``summary.csv`` in ``out_dir``."""
    out_dir = Path(out_dir)
    summary = summarize(results)
    summary["protocol"] = protocol.to_dict()
    summary["rows"] = [summary_row(r) for r in results]
    write_json(out_dir / "summary.json", summary)
    cols = list(summary["rows"][0]) if summary["rows"] else []
    lines = [",".join(cols)]
    for row in summary["rows"]:
        lines.append(",".join("" if row[c] is None else (f"{row[c]:.6g}" if isinstance(row[c], float) else str(row[c])) for c in cols))
    with atomic_path(out_dir / "summary.csv") as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    return summary


def summary_row(r: dict) -> dict:
    """One material's line: DFT and model values at the report temperature and errors."""
    row = {"name": r["name"], "formula": r.get("formula", ""), "status": r["status"]}
    ok = r["status"] == "ok"
    for m in METRICS:
        row[f"{m}_dft"] = r["dft"].get(m)
        row[f"{m}_model"] = r["model"].get(m) if ok else None
        row[f"d_{m}"] = r["errors"][m] if ok else None
    row["stable_dft"] = r["dft"]["stability"]["stable"]
    row["stable_model"] = r["model"]["stability"]["stable"] if ok else None
    row["fc_rmse"] = r["errors"].get("fc_rmse") if ok else None
    row["freq_mae_THz"] = r["errors"]["freq_mae_THz"] if ok else None
    row["seconds"] = r.get("seconds")
    row["reason"] = r.get("reason", "")
    return row
