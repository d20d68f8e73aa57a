"""What every command shares: the --backend option, one-line errors, argument parsing."""

from __future__ import annotations

import contextlib
import functools
import sys
from pathlib import Path

import click

from pftlite.core.errors import BackendUnavailable, DataUnavailable, InputError
from pftlite.potentials.files import builtin_models, resolve_model  # noqa: F401  (public names of the CLI too)

BACKEND_OPTION = click.option(
    "--backend",
    default=None,
    help="Compute backend: numba (CPU) or jax (CPU/GPU). Default: the model's first — numba for the "
         "built-in model, jax for Nequix and pair potentials.",
)


def check_fc3_backend(ev, fc3_method) -> None:
    """``--fc3 exact`` needs a backend with exact third derivatives (JAX); refused before work."""
    if fc3_method == "exact" and not ev.exact_hvp_derivative:
        raise InputError(f"--fc3 exact: third derivatives by autodiff need --backend jax "
                         f"(on {ev.backend}: --fc3 hvp-fd or displacement)")  # fmt: skip


def resolve_structure_file(arg) -> Path:
    """A structure file path, or a named reference dataset (e.g. mdr/mp-149)."""
    p = Path(arg)
    if p.exists():
        return p
    from pftlite.datasets.registry import DATASETS, MEMBERS, fetch

    if str(arg) in DATASETS or str(arg) in MEMBERS:
        return fetch(str(arg))
    return p  # the reader reports "no such file"


def load_model_arg(model):
    """The potential a MODEL argument names (model file or built-in name)."""
    from pftlite.potentials.files import load_potential

    return load_potential(resolve_model(model))


def user_errors(fn):
    """Turn user-facing exceptions into a one-line message and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (InputError, BackendUnavailable, DataUnavailable) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)

    return wrapper


def _one_line(exc: click.UsageError) -> click.UsageError:
    """The same usage error without click's usage block: one line, exit status 2."""
    if exc.ctx is None:
        return exc
    where = exc.ctx.command_path
    return click.UsageError(f"{where}: {exc.format_message()} (see {where} --help)")


class OneLineCommand(click.Command):
    """A click command whose usage errors print one line ("Error: ..."), exit status 2."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            raise _one_line(exc) from None


class OneLineGroup(click.Group):
    command_class = OneLineCommand

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            raise _one_line(exc) from None

    def resolve_command(self, ctx, args):
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            raise _one_line(exc) from None


@contextlib.contextmanager
def resume_hint(run_dir: Path):
    """Ctrl-C during training: say what the checkpoint holds and how to resume; exit 130."""
    try:
        yield
    except KeyboardInterrupt:
        done = 0
        ck = run_dir / "checkpoint.npz"
        if ck.exists():
            with contextlib.suppress(Exception):
                from pftlite.training.tune import load_checkpoint

                done = int(load_checkpoint(ck)["epoch"])
        click.echo(f"\ninterrupted: {ck} holds {done} finished epoch(s); rerun the same command to "
                   f"resume from epoch {done + 1}", err=True)  # fmt: skip
        sys.exit(130)


def read_labelled(paths, pot, energy_key, forces_key, stress_key):
    """Labelled structures of every source: extxyz, mlearn JSON, phono3py displacement data
    (yaml, folder or ``phono3py/...`` name: every displaced supercell, forces only)."""
    from pftlite.datasets.phono3py_refs import read_phono3py_labelled
    from pftlite.datasets.reference import is_phono3py_source
    from pftlite.structures.batch import MIN_DISTANCE
    from pftlite.structures.io import check_structure, read_extxyz_labels, read_mlearn

    out = []
    for arg in paths:
        if is_phono3py_source(arg):
            frames = read_phono3py_labelled(arg)
        else:
            p = resolve_structure_file(arg)
            if p.name.lower().endswith((".json", ".json.gz")):
                frames = read_mlearn(p)
            else:
                frames = read_extxyz_labels(p, energy_key, forces_key, stress_key)
        for k, a in enumerate(frames):
            check_structure(a, f"{arg}[{k}]", pot.species, min_distance=MIN_DISTANCE)
        out.extend(frames)
    if not out:
        raise InputError("fit: no labelled structures in " + ", ".join(map(str, paths)))
    return out


def read_all(paths, pot):
    """All structures in ``paths``, validated for potential ``pot`` (one-line InputError otherwise)."""
    from pftlite.structures.batch import MIN_DISTANCE
    from pftlite.structures.io import check_structure, read_structures

    structs, names = [], []
    for p in paths:
        p = resolve_structure_file(p)
        for k, a in enumerate(read_structures(p)):
            check_structure(a, f"{p}[{k}]", pot.species, min_distance=MIN_DISTANCE)
            structs.append(a)
            names.append(f"{p}[{k}]")
    if not structs:
        raise InputError("no structures found in " + ", ".join(map(str, paths)))
    return structs, names


def fmt_value(x, spec=".3f", signed=False):
    if x is None:
        return "-"
    return format(x, ("+" if signed else "") + spec)


def load_references(paths, pot):
    """Every reference read and checked before any work starts."""
    from ase.data import chemical_symbols

    from pftlite.datasets.phonopy_refs import load_reference

    refs, seen = [], {}
    for p in paths:
        ref = load_reference(p)
        missing = sorted(set(ref.unitcell.numbers) - set(pot.species))
        if missing:
            names = ", ".join(chemical_symbols[z] for z in missing)
            have = ", ".join(chemical_symbols[z] for z in pot.species)
            raise InputError(f"{ref.source}: species {names} not in the model ({have})")
        if ref.name in seen:
            raise InputError(f"{ref.source}: material name {ref.name!r} also used by {seen[ref.name]}")
        seen[ref.name] = ref.source
        refs.append(ref)
    return refs


def parse_floats(text: str, what: str) -> list[float]:
    try:
        return [float(x) for x in str(text).replace(",", " ").split()]
    except ValueError:
        raise InputError(f"{what}: expected numbers, got {text!r}") from None


def prepare_run_dir(run_dir: Path, restart: bool) -> None:
    """Create a training run folder; ``restart`` drops its checkpoint (else a rerun resumes)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if restart and (run_dir / "checkpoint.npz").exists():
        (run_dir / "checkpoint.npz").unlink()


def write_log_csv(path: Path, rows: list[dict], cols: list[str]) -> None:
    """One CSV line per training update (columns ``cols``; missing values empty), atomically."""
    from pftlite.core.atomic import atomic_path

    lines = [",".join(cols)] + [",".join("" if r.get(c) is None else str(r.get(c)) for c in cols) for r in rows]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def _stderr_is_tty() -> bool:
    return sys.stderr.isatty()


class LineProgress:
    """The part of ``click.progressbar``'s interface the bars here use, for a stderr that is not a
    terminal (a log file, a pipe), where click draws nothing until the end. Writes one plain line
    ``label: done/length text (elapsed s, ~remaining s left)`` at the first update, at the last,
    and otherwise at most every ``every`` seconds. The remaining time is extrapolated from the
    updates after the first (which may hold compilation, or steps of a run being resumed)."""

    def __init__(self, length: int, label: str, every: float = 30.0, clock=None):
        import time

        self.length, self.label, self.every = length, label, every
        self.clock = clock or time.monotonic
        self.done, self.t0, self.last, self.first = 0, self.clock(), None, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n: int, text: str | None = None) -> None:
        self.done += n
        now = self.clock()
        if self.first is None:
            self.first = (now, self.done)
        if self.last is not None and self.done < self.length and now - self.last < self.every:
            return
        self.last = now
        (t1, d1), eta = self.first, ""
        if d1 < self.done < self.length:
            eta = f", ~{(now - t1) / (self.done - d1) * (self.length - self.done):.0f} s left"
        words = " ".join(w for w in (f"{self.label}: {self.done}/{self.length}", text) if w)
        click.echo(f"{words} ({now - self.t0:.0f} s{eta})", err=True)


def progress_line_or_bar(length: int, label: str, **kw):
    """A click progress bar on a terminal, :class:`LineProgress` lines elsewhere."""
    if _stderr_is_tty():
        return click.progressbar(length=length, label=label, file=sys.stderr, **kw)
    return LineProgress(length, label)


@contextlib.contextmanager
def epoch_bar(label: str, n_epochs: int, describe):
    """A stderr progress bar over all steps of all epochs, advanced after every step (a resumed
    run starts where its checkpoint left off); yields the ``progress(epoch, step, n_steps, row)``
    callback of :func:`pftlite.training.tune.tune` / ``fit_gradient`` (epochs from 1, steps
    from 0); ``describe(row)`` is the text shown after "epoch e step s/n"."""
    state = {"bar": None, "done": 0}

    def progress(epoch, step, n_steps, row):
        if state["bar"] is None:
            state["bar"] = progress_line_or_bar(n_epochs * n_steps, label, item_show_func=lambda s: s or "")
            state["bar"].__enter__()
        done = (epoch - 1) * n_steps + step + 1
        state["bar"].update(done - state["done"], f"epoch {epoch} step {step + 1}/{n_steps} {describe(row)}")
        state["done"] = done

    try:
        yield progress
    finally:
        if state["bar"] is not None:
            state["bar"].__exit__(None, None, None)


def progress_bar(label: str):
    """A click progress bar over irreducible q-points; returns (context, callback)."""
    state = {"bar": None}

    def progress(done, total):
        if state["bar"] is None:
            state["bar"] = progress_line_or_bar(total, label)
            state["bar"].__enter__()
            state["last"] = 0
        state["bar"].update(done - state["last"])
        state["last"] = done
        if done >= total:
            state["bar"].__exit__(None, None, None)
            state["bar"] = None

    return progress
