#!/usr/bin/env python
"""Benchmark the pftlite backends: E+F+stress, one HVP, full Hessian, batch build, memory.

Usage (from the repository root)::

    python bench/bench_backends.py                         # numba + jax, 64/216/512 atoms
    python bench/bench_backends.py --sizes 64 216 --backends numba --json out.json
    python bench/bench_backends.py --readout mlp --hessian-max-atoms 64

Every (backend, size) configuration runs in a fresh Python subprocess (this script
re-invoked with a hidden ``--_worker`` flag), one after the other, so compile caches and
peak-memory readings do not leak between configurations. See bench/README.md for the
meaning of every column.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# Production-size Si model (706 features); kept in one place so JSON records it.
SPEC_KW = {
    "species": (14,),
    "r_cut": 5.0,
    "n_radial": 12,
    "l_max": 4,
    "n_radial_4b": 4,
    "l_max_4b": 3,
}
A_SI = 5.43
RATTLE = 0.01  # Å, ase.Atoms.rattle stdev
W_SCALE = 1e-2  # std of the random linear readout weights (eV)
CONTAMINATED = 0.3  # other processes using more cores than this while timing: flag the row


# ---------------------------------------------------------------------------------------
# memory helpers (Linux /proc; degrade to ru_maxrss elsewhere)
# ---------------------------------------------------------------------------------------


def _maxrss_mib() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024.0 * 1024.0) if sys.platform == "darwin" else r / 1024.0


def _proc_status_mib(key: str):
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _rss_mib():
    return _proc_status_mib("VmRSS")


def _reset_hwm() -> bool:
    """Reset the kernel's peak-RSS high-water mark (Linux >= 4.0). Also resets ru_maxrss."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _hwm_mib():
    return _proc_status_mib("VmHWM")


# ---------------------------------------------------------------------------------------
# timing helpers
# ---------------------------------------------------------------------------------------


def _once(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w0, time.process_time() - c0, out


def _measure(fn, target_s: float, max_reps: int, min_sample: float) -> dict:
    """Median per-call time of fn over repeats.

    One calibration call fixes ``number``, the calls per repeat, so that a repeat lasts at
    least ``min_sample`` seconds (process CPU time of the other threads is only accounted at
    scheduler ticks, so single millisecond calls would give noisy CPU times). Repeats run
    until ``target_s`` of wall time has been spent or ``max_reps`` repeats were taken.
    """
    gc.collect()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t_start = time.perf_counter()
    w, c, _ = _once(fn)
    number = max(1, math.ceil(min_sample / max(w, 1e-9)))
    if number == 1:  # the calibration call is a valid sample
        walls, cpus, n_calls = [w], [c], 1
    else:
        walls, cpus, n_calls = [], [], 0
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        t_start = time.perf_counter()
    while len(walls) < max_reps and (not walls or time.perf_counter() - t_start < target_s):
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(number):
            fn()
        walls.append((time.perf_counter() - w0) / number)
        cpus.append((time.process_time() - c0) / number)
        n_calls += number
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    ut, st = ru1.ru_utime - ru0.ru_utime, ru1.ru_stime - ru0.ru_stime
    return {
        # kernel (system) share of the CPU time and minor page faults per call, over the
        # timed samples
        "sys_frac": st / (ut + st) if n_calls and ut + st > 0 else None,
        "minflt_per_call": (ru1.ru_minflt - ru0.ru_minflt) / n_calls if n_calls else None,
        "wall": statistics.median(walls),
        "cpu": statistics.median(cpus),
        "wall_min": min(walls),
        "reps": len(walls),
        "number": number,
        "walls": walls,
        "cpus": cpus,
    }


def _sys_busy():
    """(busy, steal) CPU seconds of the whole machine since boot, from /proc/stat."""
    try:
        with open("/proc/stat") as fh:
            f = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    hz = os.sysconf("SC_CLK_TCK")
    busy = f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] if len(f) > 7 else 0)
    return busy / hz, (f[7] if len(f) > 7 else 0) / hz


def _phase(fn, target_s, max_reps, min_sample, hwm_ok):
    """_measure plus the peak RSS increase during it (over the RSS just before)."""
    gc.collect()
    rss0 = _rss_mib()
    if hwm_ok:
        _reset_hwm()
    res = _measure(fn, target_s, max_reps, min_sample)
    hwm = _hwm_mib() if hwm_ok else None
    res["rss_before_mib"] = rss0
    res["peak_mib"] = hwm
    res["delta_mib"] = (hwm - rss0) if (hwm is not None and rss0 is not None) else None
    return res


# ---------------------------------------------------------------------------------------
# worker: one (backend, size) configuration in this fresh process
# ---------------------------------------------------------------------------------------


def _supercell(n_atoms: int, seed: int):
    from ase.build import bulk

    n = round((n_atoms / 8) ** (1.0 / 3.0))
    atoms = bulk("Si", "diamond", A_SI, cubic=True).repeat((n, n, n))
    atoms.rattle(stdev=RATTLE, seed=seed)
    return atoms


def worker(cfg: dict) -> dict:
    t_proc0 = time.perf_counter()
    rss_start = _rss_mib()
    import numpy as np

    from pftlite.potentials.manybody.model import ModelSpec, init_params
    from pftlite.potentials.registry import manybody_backend as get_backend
    from pftlite.structures.batch import make_batch

    be = get_backend(cfg["backend"])
    t_import = time.perf_counter() - t_proc0
    rss_import = _rss_mib()

    info = {"pid": os.getpid()}
    if cfg["backend"] == "jax":
        import jax

        info["jax_devices"] = [str(d) for d in jax.devices()]
        info["jax_x64"] = bool(jax.config.jax_enable_x64)

    spec = ModelSpec(**SPEC_KW, readout=cfg["readout"])
    params = init_params(spec, seed=cfg["seed"])
    rng = np.random.default_rng(cfg["seed"] + 1)
    params["w"] = rng.normal(0.0, W_SCALE, size=params["w"].shape)
    atoms = _supercell(cfg["n_atoms"], cfg["seed"])
    N = len(atoms)
    v = np.random.default_rng(cfg["seed"] + 2).normal(size=(N, 3))
    target, max_reps = cfg["target_time"], cfg["max_repeats"]
    hess_kw = {} if cfg["hessian_chunk"] is None else {"chunk": cfg["hessian_chunk"]}

    res = {"cfg": cfg, "n_atoms": N, "n_features": spec.n_features, "t_import": t_import}

    # --- first calls (compile / JIT / cache load) -----------------------------------------
    w, c, batch = _once(lambda: make_batch([atoms], spec))
    res["first"] = {"build": w}
    res["n_edges"] = int(batch.n_edges)
    w, c, efs = _once(lambda: be.energy_forces_stress(spec, params, batch))
    res["first"]["efs"] = w
    res["first_cpu"] = {"efs": c}
    w, c, hv = _once(lambda: be.hvp(spec, params, batch, v))
    res["first"]["hvp"] = w
    res["first_cpu"]["hvp"] = c
    res["maxrss_after_compile_mib"] = _maxrss_mib()
    res["rss_baseline_mib"] = _rss_mib()  # after imports + compilation of E+F and HVP

    do_hess = cfg["hessian"]
    H = None
    if do_hess:
        w, c, H = _once(lambda: be.hessian(spec, params, batch, **hess_kw))
        res["first"]["hessian"] = w
        res["first_cpu"]["hessian"] = c
    res["maxrss_after_warmup_mib"] = _maxrss_mib()  # ru_maxrss: before any HWM reset
    if cfg["backend"] == "numba":
        import numba

        info["numba_threads"] = numba.get_num_threads()
        try:
            info["numba_threading_layer"] = numba.threading_layer()
        except ValueError:
            info["numba_threading_layer"] = None

    # --- checks (recorded, compared across backends by the parent) ------------------------
    chk = {
        "energy": float(efs["energy"][0]),
        "fnorm": float(np.linalg.norm(efs["forces"])),
        "stress_tr": float(np.trace(efs["stress"][0])),
        "hv_norm": float(np.linalg.norm(hv)),
        "hv_head": [float(x) for x in np.asarray(hv).ravel()[:6]],
    }
    if H is not None:
        Hm = H.transpose(0, 2, 1, 3).reshape(3 * N, 3 * N)
        chk["hess_sym_rel"] = float(np.abs(Hm - Hm.T).max() / np.abs(Hm).max())
        chk["hess_v_vs_hvp_rel"] = float(
            np.linalg.norm(Hm @ v.ravel() - np.asarray(hv).ravel()) / np.linalg.norm(hv)
        )
        del Hm, H
    res["check"] = chk
    del efs, hv

    # --- timed phases ---------------------------------------------------------------------
    hwm_ok = _reset_hwm() and _hwm_mib() is not None
    res["hwm_reset_ok"] = hwm_ok
    res["rss_steady_mib"] = _rss_mib()  # after warm-up of everything (allocator caches kept)
    ms = cfg["min_sample"]
    sys0, w0, c0 = _sys_busy(), time.perf_counter(), time.process_time()
    res["build"] = _phase(lambda: make_batch([atoms], spec), target, max_reps, ms, hwm_ok)
    res["efs"] = _phase(
        lambda: be.energy_forces_stress(spec, params, batch), target, max_reps, ms, hwm_ok
    )
    res["hvp"] = _phase(lambda: be.hvp(spec, params, batch, v), target, max_reps, ms, hwm_ok)
    if do_hess:
        res["hessian"] = _phase(
            lambda: be.hessian(spec, params, batch, **hess_kw), target, max_reps, ms, hwm_ok
        )
    sys1, w1, c1 = _sys_busy(), time.perf_counter(), time.process_time()
    if sys0 is not None and sys1 is not None:
        # CPU used by everything else on the machine while we were timing (cores), and steal
        res["foreign_cores"] = max(0.0, (sys1[0] - sys0[0]) - (c1 - c0)) / (w1 - w0)
        res["steal_cores"] = (sys1[1] - sys0[1]) / (w1 - w0)
    res["timed_wall_s"] = w1 - w0
    peaks = [res["maxrss_after_warmup_mib"]] + [
        res[k]["peak_mib"]
        for k in ("build", "efs", "hvp", "hessian")
        if k in res and res[k]["peak_mib"]
    ]
    res["peak_mib"] = max(peaks)  # overall peak RSS of this process (incl. compile, first calls)
    res["maxrss_end_mib"] = _maxrss_mib()
    res["rss_start_mib"] = rss_start
    res["rss_import_mib"] = rss_import
    res["info"] = info
    res["wall_total"] = time.perf_counter() - t_proc0
    return res


# ---------------------------------------------------------------------------------------
# parent: orchestration, derived ratios, tables
# ---------------------------------------------------------------------------------------


def _machine_info(backends) -> dict:
    import numpy

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "numpy": numpy.__version__,
        "env": {
            k: os.environ[k]
            for k in (
                "NUMBA_NUM_THREADS",
                "OMP_NUM_THREADS",
                "XLA_FLAGS",
                "JAX_PLATFORMS",
                "NUMBA_CACHE_DIR",
                "MKL_NUM_THREADS",
                "OPENBLAS_NUM_THREADS",
            )
            if k in os.environ
        },
    }
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import numba

        info["numba"] = numba.__version__
        info["numba_threads_config"] = numba.config.NUMBA_NUM_THREADS
    except ImportError:
        info["numba"] = None
    try:
        from importlib.metadata import version

        info["jax"] = version("jax")
        info["jaxlib"] = version("jaxlib")
    except Exception:  # noqa: BLE001
        info["jax"] = None
    try:
        import ase

        info["ase"] = ase.__version__
    except ImportError:
        pass
    if hasattr(os, "getloadavg"):
        info["loadavg_start"] = os.getloadavg()
    return info


def _wait_idle(max_wait: float, threshold: float = 0.25) -> float:
    """Wait (up to max_wait s) until other processes use < threshold cores; returns the last load."""
    t0 = time.perf_counter()
    load = 0.0
    while True:
        a = _sys_busy()
        if a is None:
            return float("nan")
        time.sleep(1.0)
        b = _sys_busy()
        load = b[0] - a[0]
        if load < threshold or time.perf_counter() - t0 >= max_wait:
            return load
        time.sleep(2.0)


def _run_worker(cfg: dict, timeout: float, env_extra: dict) -> dict:
    with tempfile.TemporaryDirectory(prefix="pftlite-bench-") as tmp:
        out = Path(tmp) / "result.json"
        cfg = dict(cfg, out=str(out))
        env = dict(os.environ, **env_extra)
        if cfg.get("cold_numba_cache"):
            env["NUMBA_CACHE_DIR"] = str(Path(tmp) / "numba_cache")
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_worker", json.dumps(cfg)]
        t0 = time.perf_counter()
        try:
            p = subprocess.run(
                cmd, check=False, env=env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return {"cfg": cfg, "error": f"timed out after {timeout:.0f} s"}
        if p.returncode != 0 or not out.exists():
            tail = (p.stderr or "")[-2000:]
            return {"cfg": cfg, "error": f"worker exit {p.returncode}: {tail.strip()}"}
        res = json.loads(out.read_text())
        res["wall_subprocess"] = time.perf_counter() - t0
        return res


def _fmt(x, spec="8.2f", width=None, dash="-"):
    if x is None:
        s = dash
    else:
        s = format(x, spec)
    return s.rjust(width) if width else s


def _ms(x):
    return None if x is None else 1e3 * x


def _get(r, phase, key="wall"):
    if r is None or "error" in r or phase not in r:
        return None
    return r[phase][key]


def _ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def derive(results: list) -> dict:
    """Ratios measured in this run: HVP/(E+F), growth with N, jax/numba."""
    by = {(r["cfg"]["backend"], r["cfg"]["n_atoms"]): r for r in results if "error" not in r}
    der = {"hvp_over_efs": {}, "growth": {}, "jax_over_numba": {}}
    backends = sorted(
        {b for b, _ in by}, key=lambda b: ["numba", "jax"].index(b) if b in ("numba", "jax") else 9
    )
    for (b, n), r in by.items():
        der["hvp_over_efs"][f"{b}:{n}"] = {
            "wall": _ratio(_get(r, "hvp"), _get(r, "efs")),
            "cpu": _ratio(_get(r, "hvp", "cpu"), _get(r, "efs", "cpu")),
        }
    for b in backends:
        sizes = sorted(n for bb, n in by if bb == b)
        if not sizes:
            continue
        n0 = sizes[0]
        r0 = by[(b, n0)]
        for n in sizes:
            r = by[(b, n)]
            g = {}
            for ph, p in (("efs", 1), ("hvp", 1), ("build", 1), ("hessian", 2)):
                for k in ("wall", "cpu"):
                    a, a0 = _get(r, ph, k), _get(r0, ph, k)
                    g[f"{ph}_{k}"] = _ratio(
                        None if a is None else a / n**p, None if a0 is None else a0 / n0**p
                    )
            der["growth"][f"{b}:{n}"] = dict(g, reference_n=n0)
    for n in sorted({n for _, n in by}):
        rn, rj = by.get(("numba", n)), by.get(("jax", n))
        if rn is None or rj is None:
            continue
        der["jax_over_numba"][str(n)] = {
            f"{ph}_{k}": _ratio(_get(rj, ph, k), _get(rn, ph, k))
            for ph in ("efs", "hvp", "hessian")
            for k in ("wall", "cpu")
        }
    return der


def _rel(a, b):
    if a is None or b is None:
        return None
    return abs(a - b) / max(abs(a), abs(b), 1e-300)


def print_report(info, args, results, der, out=sys.stdout):
    P = lambda *a: print(*a, file=out)
    line = "=" * 118
    P(line)
    P("pftlite backend benchmark")
    P(line)
    P(f"host     : {info.get('cpu_model', '?')} | cpu_count={info['cpu_count']} "
      f"affinity={info['cpu_affinity']} | {info['platform']}")  # fmt: skip
    P(f"software : python {info['python']}  numpy {info['numpy']}  numba {info.get('numba')} "
      f"(NUMBA_NUM_THREADS={info.get('numba_threads_config')})  jax {info.get('jax')} "
      f"(jaxlib {info.get('jaxlib')})  ase {info.get('ase')}")  # fmt: skip
    wk = {}
    for r in results:
        if "error" not in r:
            wk.update({k: v for k, v in r["info"].items() if k != "pid"})
    P(f"runtime  : numba threads used={wk.get('numba_threads', '-')} "
      f"layer={wk.get('numba_threading_layer', '-')}  jax devices={wk.get('jax_devices', '-')} "
      f"x64={wk.get('jax_x64', '-')}")  # fmt: skip
    if info["env"]:
        P(f"env      : {info['env']}")
    P(
        f"model    : Si, {SPEC_KW}, readout={args.readout}, F={results[0].get('n_features', '?') if results else '?'}"
    )
    P(f"protocol : fresh subprocess per (backend, N); first call timed separately; median of "
      f"repeats (each >= {args.min_sample:g} s of calls) until >= {args.target_time:g} s or "
      f"{args.max_repeats} repeats; numba cache "
      f"{'COLD (fresh NUMBA_CACHE_DIR per config)' if args.cold_numba_cache else 'as installed (cache=True)'}")  # fmt: skip
    la0, la1 = info.get("loadavg_start"), info.get("loadavg_end")
    if la0:
        P(f"load avg : start {la0[0]:.2f} {la0[1]:.2f} {la0[2]:.2f}   end "
          f"{la1[0]:.2f} {la1[1]:.2f} {la1[2]:.2f}")  # fmt: skip

    errs = [r for r in results if "error" in r]
    ok = [r for r in results if "error" not in r]

    # ---- 1. steady-state timings
    P("")
    P(
        "1) Steady-state time per call (median; wall = perf_counter, cpu = process_time summed over threads)"
    )
    hdr = (f"{'backend':<8}{'N':>5}{'edges':>7}{'build':>9}{'E+F+S':>10}{'E+F+S':>10}"
           f"{'HVP':>10}{'HVP':>10}{'Hessian':>10}{'Hessian':>10}{'reps':>11}")  # fmt: skip
    sub = (f"{'':<8}{'':>5}{'':>7}{'wall ms':>9}{'wall ms':>10}{'cpu ms':>10}"
           f"{'wall ms':>10}{'cpu ms':>10}{'wall s':>10}{'cpu s':>10}{'b/E/H/Hs':>11}")  # fmt: skip
    P(hdr)
    P(sub)
    P("-" * len(hdr))
    for r in ok:
        c = r["cfg"]
        reps = "/".join(
            str(r[k]["reps"]) if k in r else "-" for k in ("build", "efs", "hvp", "hessian")
        )
        P(f"{c['backend']:<8}{r['n_atoms']:>5}{r['n_edges']:>7}"
          f"{_fmt(_ms(_get(r, 'build')), '.2f', 9)}"
          f"{_fmt(_ms(_get(r, 'efs')), '.2f', 10)}{_fmt(_ms(_get(r, 'efs', 'cpu')), '.2f', 10)}"
          f"{_fmt(_ms(_get(r, 'hvp')), '.2f', 10)}{_fmt(_ms(_get(r, 'hvp', 'cpu')), '.2f', 10)}"
          f"{_fmt(_get(r, 'hessian'), '.3f', 10)}{_fmt(_get(r, 'hessian', 'cpu'), '.3f', 10)}"
          f"{reps:>11}{' !' if (r.get('foreign_cores') or 0) > CONTAMINATED else ''}")  # fmt: skip
    if any((r.get("foreign_cores") or 0) > CONTAMINATED for r in ok):
        P(
            f"   ! = other processes used > {CONTAMINATED} cores while this row was timed "
            "(see 'other load' in table 2); its times are not trustworthy"
        )

    # ---- 2. first calls
    P("")
    P("2) First call (includes Numba compile or cache load / JAX trace+compile), wall seconds;")
    P(
        "   other load = CPU cores used by other processes on the machine while this config was timed"
    )
    hdr = (f"{'backend':<8}{'N':>5}{'import':>9}{'build':>9}{'E+F+S':>9}{'HVP':>9}{'Hessian':>9}"
           f"{'E+F 1st/steady':>16}{'proc total':>12}{'other load':>12}")  # fmt: skip
    P(hdr)
    P("-" * len(hdr))
    for r in ok:
        f = r["first"]
        P(f"{r['cfg']['backend']:<8}{r['n_atoms']:>5}{_fmt(r['t_import'], '.2f', 9)}"
          f"{_fmt(f.get('build'), '.3f', 9)}{_fmt(f.get('efs'), '.3f', 9)}{_fmt(f.get('hvp'), '.3f', 9)}"
          f"{_fmt(f.get('hessian'), '.2f', 9)}{_fmt(_ratio(f.get('efs'), _get(r, 'efs')), '.0f', 16)}"
          f"{_fmt(r.get('wall_subprocess'), '.1f', 12)}{_fmt(r.get('foreign_cores'), '.2f', 12)}")  # fmt: skip

    # ---- 3. ratios within a backend
    P("")
    P("3) Ratios within one backend: HVP/(E+F+S); cpu/wall (threads busy); growth = time per atom "
      "relative to smallest N (Hessian: per atom^2)")  # fmt: skip
    hdr = (f"{'backend':<8}{'N':>5}{'HVP/EF':>9}{'HVP/EF':>9}{'cpu/wall':>10}{'cpu/wall':>10}"
           f"{'cpu/wall':>10}{'growth':>9}{'growth':>9}{'growth':>9}{'growth':>9}{'Hess/HVP':>10}")  # fmt: skip
    sub = (f"{'':<8}{'':>5}{'wall':>9}{'cpu':>9}{'E+F':>10}{'HVP':>10}{'Hess':>10}"
           f"{'E+F':>9}{'HVP':>9}{'Hess/N2':>9}{'build':>9}{'x 3N':>10}")  # fmt: skip
    P(hdr)
    P(sub)
    P("-" * len(hdr))
    for r in ok:
        b, n = r["cfg"]["backend"], r["n_atoms"]
        h = der["hvp_over_efs"].get(f"{b}:{n}", {})
        g = der["growth"].get(f"{b}:{n}", {})
        hh = _get(r, "hessian")
        P(f"{b:<8}{n:>5}{_fmt(h.get('wall'), '.2f', 9)}{_fmt(h.get('cpu'), '.2f', 9)}"
          f"{_fmt(_ratio(_get(r, 'efs', 'cpu'), _get(r, 'efs')), '.2f', 10)}"
          f"{_fmt(_ratio(_get(r, 'hvp', 'cpu'), _get(r, 'hvp')), '.2f', 10)}"
          f"{_fmt(_ratio(_get(r, 'hessian', 'cpu'), hh), '.2f', 10)}"
          f"{_fmt(g.get('efs_wall'), '.2f', 9)}{_fmt(g.get('hvp_wall'), '.2f', 9)}"
          f"{_fmt(g.get('hessian_wall'), '.2f', 9)}{_fmt(g.get('build_wall'), '.2f', 9)}"
          f"{_fmt(_ratio(hh, None if _get(r, 'hvp') is None else 3 * n * _get(r, 'hvp')), '.3f', 10)}")  # fmt: skip

    # ---- 4. jax vs numba
    if der["jax_over_numba"]:
        P("")
        P("4) JAX vs Numba: jax time / numba time (same run; > 1 means Numba is faster)")
        hdr = (f"{'N':>5}{'E+F wall':>11}{'E+F cpu':>11}{'HVP wall':>11}{'HVP cpu':>11}"
               f"{'Hess wall':>11}{'Hess cpu':>11}")  # fmt: skip
        P(hdr)
        P("-" * len(hdr))
        for n, d in der["jax_over_numba"].items():
            P(f"{n:>5}" + "".join(_fmt(d[f"{ph}_{k}"], ".2f", 11)
                                  for ph in ("efs", "hvp", "hessian") for k in ("wall", "cpu")))  # fmt: skip

    # ---- 5. memory
    P("")
    P("5) Memory (RSS, MiB). base = RSS after imports + batch + compiling E+F and HVP; peak = process "
      "peak incl. compile/first calls;")  # fmt: skip
    P("   dE+F / dHVP / dHess = peak RSS during the timed calls minus RSS just before them")
    hdr = (f"{'backend':<8}{'N':>5}{'import':>9}{'base':>9}{'steady':>9}{'peak':>9}"
           f"{'peak-base':>11}{'dE+F':>8}{'dHVP':>8}{'dHess':>9}")  # fmt: skip
    P(hdr)
    P("-" * len(hdr))
    for r in ok:
        P(f"{r['cfg']['backend']:<8}{r['n_atoms']:>5}{_fmt(r['rss_import_mib'], '.0f', 9)}"
          f"{_fmt(r['rss_baseline_mib'], '.0f', 9)}{_fmt(r['rss_steady_mib'], '.0f', 9)}"
          f"{_fmt(r['peak_mib'], '.0f', 9)}"
          f"{_fmt(r['peak_mib'] - r['rss_baseline_mib'] if r['rss_baseline_mib'] else None, '.0f', 11)}"
          f"{_fmt(_get(r, 'efs', 'delta_mib'), '.1f', 8)}{_fmt(_get(r, 'hvp', 'delta_mib'), '.1f', 8)}"
          f"{_fmt(_get(r, 'hessian', 'delta_mib'), '.0f', 9)}")  # fmt: skip

    # ---- 5b. kernel time / page faults
    P("")
    P(
        "5b) Kernel share of CPU time (ru_stime / (ru_utime + ru_stime)) and minor page faults per call"
    )
    hdr = (f"{'backend':<8}{'N':>5}{'sys% E+F':>10}{'sys% HVP':>10}{'sys% Hess':>11}"
           f"{'flt/E+F':>10}{'flt/HVP':>10}{'flt/Hess':>11}")  # fmt: skip
    P(hdr)
    P("-" * len(hdr))
    pct = lambda x: None if x is None else 100.0 * x
    for r in ok:
        P(f"{r['cfg']['backend']:<8}{r['n_atoms']:>5}"
          f"{_fmt(pct(_get(r, 'efs', 'sys_frac')), '.0f', 10)}{_fmt(pct(_get(r, 'hvp', 'sys_frac')), '.0f', 10)}"
          f"{_fmt(pct(_get(r, 'hessian', 'sys_frac')), '.0f', 11)}"
          f"{_fmt(_get(r, 'efs', 'minflt_per_call'), '.0f', 10)}{_fmt(_get(r, 'hvp', 'minflt_per_call'), '.0f', 10)}"
          f"{_fmt(_get(r, 'hessian', 'minflt_per_call'), '.0f', 11)}")  # fmt: skip

    # ---- 6. consistency
    P("")
    P("6) Consistency (sanity, not a test): energy, |F|, |Hv| and checks on the full Hessian")
    hdr = (f"{'backend':<8}{'N':>5}{'energy eV':>16}{'|F| eV/A':>12}{'|Hv|':>12}{'H sym rel':>11}"
           f"{'|Hv-hvp|/|hvp|':>16}")  # fmt: skip
    P(hdr)
    P("-" * len(hdr))
    for r in ok:
        c = r["check"]
        P(f"{r['cfg']['backend']:<8}{r['n_atoms']:>5}{c['energy']:>16.8f}{c['fnorm']:>12.6f}"
          f"{c['hv_norm']:>12.6f}{_fmt(c.get('hess_sym_rel'), '.1e', 11)}"
          f"{_fmt(c.get('hess_v_vs_hvp_rel'), '.1e', 16)}")  # fmt: skip
    by = {(r["cfg"]["backend"], r["n_atoms"]): r for r in ok}
    for n in sorted({n for _, n in by}):
        if ("numba", n) in by and ("jax", n) in by:
            a, b = by[("numba", n)]["check"], by[("jax", n)]["check"]
            P(f"   N={n}: numba vs jax rel. diff: energy {_fmt(_rel(a['energy'], b['energy']), '.1e')}, "
              f"|F| {_fmt(_rel(a['fnorm'], b['fnorm']), '.1e')}, |Hv| {_fmt(_rel(a['hv_norm'], b['hv_norm']), '.1e')}")  # fmt: skip

    if errs:
        P("")
        P("Failed / skipped configurations:")
        for r in errs:
            P(f"   {r['cfg']['backend']}:{r['cfg']['n_atoms']}: {r['error']}")
    skipped = [f"{r['cfg']['backend']}:{r['n_atoms']}" for r in ok if not r["cfg"]["hessian"]]
    if skipped:
        P(
            f"Hessian not run ('-') for: {', '.join(skipped)} "
            f"(--hessian-max-atoms {args.hessian_max_atoms}, --no-hessian, or --skip)"
        )
    P(line)


def _parse_skip(items):
    """--skip backend:N or backend:N:hessian -> (set of (b, n)), (set of (b, n) without Hessian)."""
    full, hess = set(), set()
    for it in items or []:
        parts = it.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "hessian"):
            raise SystemExit(f"--skip: expected BACKEND:N or BACKEND:N:hessian, got {it!r}")
        key = (parts[0], int(parts[1]))
        (hess if len(parts) == 3 else full).add(key)
    return full, hess


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[64, 216, 512],
        help="atom counts, each 8*n^3 (Si diamond cubic cell repeated n x n x n)",
    )
    ap.add_argument("--backends", nargs="+", default=["numba", "jax"], choices=["numba", "jax"])
    ap.add_argument("--readout", default="linear", choices=["linear", "mlp"])
    ap.add_argument("--json", help="write all raw and derived numbers to this JSON file")
    ap.add_argument(
        "--hessian-max-atoms",
        type=int,
        default=216,
        help="skip the full Hessian (3N HVPs) above this many atoms (default 216)",
    )
    ap.add_argument("--no-hessian", action="store_true", help="never time the full Hessian")
    ap.add_argument(
        "--hessian-chunk",
        type=int,
        default=None,
        help="columns per Hessian kernel call (default: each backend's own choice)",
    )
    ap.add_argument(
        "--skip",
        nargs="+",
        metavar="BACKEND:N[:hessian]",
        help="skip a configuration entirely, or only its Hessian, e.g. jax:216:hessian",
    )
    ap.add_argument(
        "--target-time",
        type=float,
        default=1.0,
        help="repeat each timed call until this much wall time is spent (s)",
    )
    ap.add_argument("--max-repeats", type=int, default=5)
    ap.add_argument(
        "--min-sample",
        type=float,
        default=0.05,
        help="batch fast calls so that one timed repeat lasts at least this long (s)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--numba-threads",
        type=int,
        default=None,
        help="set NUMBA_NUM_THREADS in the workers (default: numba's default)",
    )
    ap.add_argument(
        "--cold-numba-cache",
        action="store_true",
        help="give each worker an empty NUMBA_CACHE_DIR so first calls include real compilation",
    )
    ap.add_argument("--timeout", type=float, default=900.0, help="per-configuration time limit (s)")
    ap.add_argument(
        "--wait-idle",
        type=float,
        default=60.0,
        metavar="S",
        help="before each configuration wait up to S seconds for other processes to "
        "use < 0.25 cores (0: do not wait)",
    )
    ap.add_argument(
        "--retries",
        type=int,
        default=1,
        help="re-run a configuration this many times if other processes used more than "
        f"{CONTAMINATED} cores while it was timed",
    )
    ap.add_argument("--_worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args._worker:
        cfg = json.loads(args._worker)
        res = worker(cfg)
        Path(cfg["out"]).write_text(json.dumps(res))
        return 0

    for n in args.sizes:
        k = round((n / 8) ** (1.0 / 3.0))
        if 8 * k**3 != n or k < 1:
            ap.error(f"--sizes: {n} is not 8*n^3 (use 64, 216, 512, 1000, ...)")
    skip_full, skip_hess = _parse_skip(args.skip)
    env_extra = {}
    if args.numba_threads:
        env_extra["NUMBA_NUM_THREADS"] = str(args.numba_threads)

    info = _machine_info(args.backends)
    results = []
    t0 = time.perf_counter()
    for b in args.backends:
        for n in sorted(args.sizes):
            if (b, n) in skip_full:
                continue
            hess = (not args.no_hessian) and n <= args.hessian_max_atoms and (b, n) not in skip_hess
            cfg = {
                "backend": b, "n_atoms": n, "readout": args.readout, "seed": args.seed,
                "hessian": hess, "hessian_chunk": args.hessian_chunk,
                "target_time": args.target_time, "max_repeats": args.max_repeats,
                "cold_numba_cache": args.cold_numba_cache, "min_sample": args.min_sample,
            }  # fmt: skip
            for attempt in range(1 + args.retries):
                if args.wait_idle > 0:
                    idle = _wait_idle(args.wait_idle)
                print(f"[bench] {b:>5} N={n:<5} hessian={'yes' if hess else 'no ':<3} ...",
                      end="", file=sys.stderr, flush=True)  # fmt: skip
                r = _run_worker(cfg, args.timeout, env_extra)
                r.setdefault("n_atoms", n)
                r["attempt"] = attempt
                if args.wait_idle > 0:
                    r["idle_load_before"] = idle
                busy = r.get("foreign_cores") or 0.0
                msg = (
                    r["error"].splitlines()[-1]
                    if "error" in r
                    else (f"{r['wall_subprocess']:.1f} s, other load {busy:.2f} cores")
                )
                print(f" {msg}", file=sys.stderr, flush=True)
                if "error" in r or busy <= CONTAMINATED:
                    break
            results.append(r)
    if hasattr(os, "getloadavg"):
        info["loadavg_end"] = os.getloadavg()
    info["bench_wall_s"] = time.perf_counter() - t0
    der = derive(results)
    print_report(info, args, results, der)
    print(f"total benchmark wall time: {info['bench_wall_s']:.1f} s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(
            {"machine": info, "args": vars(args), "spec": SPEC_KW, "results": results, "derived": der},
            indent=1, default=str,
        ))  # fmt: skip
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
