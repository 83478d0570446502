"""cprof's Python API: load stored runs, compare them, and draw or export any view of them, with the same renderers
as the CLI. `import cprof` gives these names (cprof/__init__.py); the CLI, notebooks and test suites call them.

Errors a caller can cause raise CprofError (its exit_code says which kind, as the CLI's exit codes do); things worth
knowing that are not errors are issued as CprofWarning through `warnings`."""

from __future__ import annotations

import html
import io
import os
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from cprof.building.driver import BuildOptions, adaptive_filter, build_sources, build_with_command, last_build
from cprof.building.summary import BuildSummary
from cprof.errors import EXIT_CORRUPT, EXIT_NOT_FOUND, EXIT_SETUP, EXIT_USAGE, CprofError, CprofWarning
from cprof.model.adaptive import choose_counted, timed_identities
from cprof.model.diff import RunDiff, diff_runs
from cprof.model.load import GroupRun, load_run, load_runs, load_view, run_files
from cprof.running.launcher import TraceOptions
from cprof.running.programs import RunOptions, RunsResult, perform_runs
from cprof.render.base import DIFF, RUN, renderer_named
from cprof.render.diff_table import DiffOptions
from cprof.render.json_diff import diff_document
from cprof.render.json_report import function_record, report_document
from cprof.render.table import ReportOptions, selected_functions
from cprof.runfile import RunFileError, read_header
from cprof.workspace import RunEntry, Store, target_of, validate_tag

__all__ = ["BuildOptions", "BuildResult", "CprofError", "CprofWarning", "Diff", "FunctionRecord", "Run", "RunOptions",
           "TraceOptions", "build", "diff", "fallbacks", "learn_counted", "load", "merge", "profile", "prune", "remove",
           "run", "run_program", "runs", "tag", "tags", "untag"]


class FunctionRecord(dict):
    """One function's figures, with the same fields as in `cprof report --json` (name, file, line, calls,
    self_ns, total_ns, self_err_ns, alloc_count...), readable as keys or as attributes."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"a function record has no field '{name}' (it has {', '.join(self)})") from None


def _rendered(renderer, view) -> str | bytes:
    out = io.BytesIO() if getattr(renderer, "binary", False) else io.StringIO()
    renderer.render(view, out)
    return out.getvalue()


def _renderer(kind: str, format, options):
    """A renderer object as given, or the registry's renderer of that name made with `options`."""
    return renderer_named(kind, format)(options) if isinstance(format, str) else format


class Run:
    """A stored run, or a group of runs (`profile --repeat`) whose figures are per-function medians."""

    def __init__(self, view):
        self.model = view  # the model's Run or GroupRun, for what this class does not wrap

    def __repr__(self) -> str:
        kind = f"group of {len(self.model.runs)} runs" if self.is_group else "run"
        return f"<cprof {kind} {self.id}: {' '.join(self.command)}>"

    @property
    def id(self) -> str:
        return self.model.id

    @property
    def is_group(self) -> bool:
        return isinstance(self.model, GroupRun)

    @property
    def command(self) -> list[str]:
        return list(self.model.command)

    @property
    def meta(self) -> dict:
        """What the store keeps about the run: command, start time, exit status, tag, group..."""
        return dict(self.model.meta)

    @property
    def exit_status(self) -> int | None:
        return self.model.exit_status

    @property
    def complete(self) -> bool:
        return self.model.complete

    @property
    def wall_ns(self) -> float:
        return self.model.wall_ns

    @property
    def threads(self) -> list:
        """Every thread of every process (a group: of its median run), each with its call tree (`.root`)."""
        return list(getattr(self.model, "representative", self.model).threads)

    def functions(self, corrected: bool = True, threads: bool = False) -> list[FunctionRecord]:
        """Every function, by self time; `threads` adds each one's per-thread figures."""
        options = ReportOptions(top=None, corrected=corrected, threads=threads)
        shown, _ = selected_functions(self.model, options)
        corrected = corrected and self.model.calibrated
        return [FunctionRecord(function_record(item, threads, corrected)) for item in shown]

    def function(self, name: str, corrected: bool = True) -> FunctionRecord:
        """The function of that name (a static function defined in several files: name it as FILE:NAME)."""
        file, _, bare = name.rpartition(":") if ":" in name else ("", "", name)
        found = [f for f in self.functions(corrected) if f.name == bare and (not file or f.file.endswith(file))]
        if not found:
            raise CprofError(f"run {self.id} has no function '{name}'", EXIT_NOT_FOUND)
        if len(found) > 1:
            raise CprofError(f"'{name}' names {len(found)} functions ({', '.join(f'{f.file}:{f.name}' for f in found)}"
                             "): name one as FILE:NAME", EXIT_USAGE)
        return found[0]

    def top(self, n: int = 10, by: str = "self_ns", corrected: bool = True) -> list[FunctionRecord]:
        """The n functions with the most of `by` (any numeric field: self_ns, total_ns, calls, alloc_bytes...)."""
        records = self.functions(corrected)
        if records and by not in records[0]:
            raise CprofError(f"cannot sort by '{by}' (fields: {', '.join(records[0])})", EXIT_USAGE)
        return sorted(records, key=lambda record: record[by] or 0, reverse=True)[:n]

    def to_json(self, corrected: bool = True, memory: bool = False) -> dict:
        """The report as `cprof report --json --all` writes it (schema cprof-report/4)."""
        return report_document(self.model, ReportOptions(top=None, corrected=corrected, memory=memory))

    def to_dataframe(self, corrected: bool = True):
        """The functions as a pandas DataFrame, one row per function (pandas is an optional extra)."""
        try:
            import pandas
        except ImportError:
            raise CprofError("to_dataframe needs pandas: pip install 'cprof[pandas]' (or pandas)", EXIT_SETUP) from None
        return pandas.DataFrame(self.functions(corrected))

    def render(self, format: str = "table", options: ReportOptions | None = None) -> str | bytes:
        """Any view the CLI draws, by its name: table, tree, mem, json, flame, chart, folded, speedscope, chrome,
        callgrind, pprof (bytes)."""
        return _rendered(_renderer(RUN, format, options), self.model)

    def write(self, out, format="table", options: ReportOptions | None = None) -> None:
        """Writes a view into an open file (binary for pprof): a renderer's name as render() takes it, or a
        renderer object (cprof.render: FlameGraph(options, title)...). Big exports stream without one string."""
        _renderer(RUN, format, options).render(self.model, out)

    def flamegraph(self, weight: str = "time", chart: bool = False) -> str:
        """The SVG flamegraph (weight: time, calls or bytes), or with `chart` the flamechart of a traced run."""
        return self.render("chart" if chart else "flame", ReportOptions(top=None, weight=weight))

    def _repr_html_(self) -> str:
        table = self.render("table", ReportOptions(top=15))
        return f"<pre>{html.escape(table)}</pre>"


class Diff:
    """Two runs or groups compared function by function, as `cprof diff` compares them."""

    def __init__(self, model: RunDiff):
        self.model = model

    def __repr__(self) -> str:
        return f"<cprof diff {self.model.a_label} -> {self.model.b_label}: {len(self.model.changes)} functions>"

    @property
    def rows(self) -> list[dict]:
        """Every function's change: name, file, line, a and b (self_ns, spread_ns, err_ns, calls...), delta_ns,
        delta_percent, noise_ns, significant — as in `cprof diff --json`."""
        return diff_document(self.model)["functions"]

    @property
    def total_delta_percent(self) -> float | None:
        return self.model.total_delta_percent

    @property
    def noise_ns(self) -> float:
        """What the total's change has to clear to count."""
        return self.model.total_noise_ns

    def regressions(self, threshold_percent: float) -> list[str]:
        """Why the comparison fails a budget: functions (of at least 1% of A's time) or the total that got more than
        threshold_percent slower beyond the noise. Empty: it passes."""
        return self.model.regressions_over(threshold_percent)

    def to_json(self, fail_over: float | None = None) -> dict:
        return diff_document(self.model, fail_over)

    def render(self, format: str = "table", options: DiffOptions | None = None) -> str:
        """table, json, or flame (the differential flamegraph's SVG)."""
        return _rendered(_renderer(DIFF, format, options), self.model)

    def write(self, out, format="table", options: DiffOptions | None = None) -> None:
        """Writes the comparison into an open file: a format's name, or a renderer object."""
        _renderer(DIFF, format, options).render(self.model, out)

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(self.render('table'))}</pre>"


def load(ref: str | None = "latest", home: str | None = None) -> Run:
    """A stored run or group: a run id (or unique prefix), tag, group id, latest, latest~N, or a path to a run
    directory or file. `home` is the store (default: $CPROF_HOME, else .cprof in the current directory)."""
    return Run(load_view(Store(home), None if ref == "latest" else ref))


def _compare(store: Store, a: str | None, b: str | None, corrected: bool = True) -> RunDiff:
    """A (default: the run or group before the latest) against B (default: the latest), as the model compares them;
    as diff() loads its two sides."""
    try:
        a_runs, b_runs = load_runs(store, a or "latest~1"), load_runs(store, b or "latest")
    except CprofError as error:
        if a is None and "goes back too far" in error.message:
            raise CprofError("diff needs two runs and only one is stored; run again, or name two runs",
                             EXIT_NOT_FOUND) from None
        raise
    if {r.path for r in a_runs} == {r.path for r in b_runs}:
        warnings.warn("A and B are the same run; run the program again to compare", CprofWarning, stacklevel=3)
    return diff_runs(a_runs, b_runs, _label(a, a_runs), _label(b, b_runs), corrected=corrected)


def _label(reference: str | None, runs) -> str:
    if reference:
        return reference
    return runs[0].meta.get("group") if len(runs) > 1 else runs[0].id


def diff(a: str | Run | None = None, b: str | Run | None = None, home: str | None = None,
         corrected: bool = True) -> Diff:
    """A against B (references as load() takes them, or Run objects); by default the run before the latest
    against the latest."""
    refs = [(x.id if x.is_group else x.model.path) if isinstance(x, Run) else x for x in (a, b)]
    return Diff(_compare(Store(home), refs[0], refs[1], corrected))


@dataclass
class BuildResult:
    summary: BuildSummary  # units, fallbacks, functions instrumented and skipped, what was linked
    counted: list[str] = field(default_factory=list)  # --adaptive: the functions only counted
    learned_from: str | None = None  # --adaptive: the run that said which


def _learning_run(store: Store):
    """The latest run of a program the last build linked, to learn from (None when there is none)."""
    try:
        links = {os.path.basename(link["output"]) for link in last_build(store)["links"]}
    except CprofError:
        return None
    for entries in reversed(store.distinct(store.runs())):
        if entries[0].meta.get("program") in links:
            # A program rebuilt since its run (the build that learns from it is often the second of two) cannot
            # have its samples resolved, which only divide self times; what is learnt, time per call, needs none.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CprofWarning)
                return load_run(entries[-1])
    return None


def build(sources: Sequence[str] = (), *, command: Sequence[str] | None = None, output: str | None = None,
          compiler_args: Sequence[str] = (), options: BuildOptions | None = None, home: str | None = None,
          learned_from: Run | None = None) -> BuildResult:
    """Compiles C sources into one program (compiler_args: flags, default -O2 -g), or runs a build command (make,
    cmake...) with every C compile instrumented. With options.adaptive, `learned_from` (else the latest run of the
    last build) says which functions are too cheap to time: they are only counted."""
    store = Store(home)
    options = options or BuildOptions()
    if not sources and not command:
        raise CprofError("nothing to build: give C sources, or a build command after --", EXIT_USAGE)
    options, counted, learned = learn_counted(options, home, learned_from)
    if sources:
        summary = build_sources(list(sources), output, list(compiler_args), options, store)
    else:
        summary = build_with_command(list(command), options, store)
    return BuildResult(summary, counted, learned)


def learn_counted(options: BuildOptions, home: str | None = None,
                  learned_from: Run | None = None) -> tuple[BuildOptions, list[str], str | None]:
    """With options.adaptive: the options with the functions `learned_from` (else the latest run of the last build)
    found too cheap to time counted only, those functions, and the run's id. Without it: the options unchanged."""
    if not options.adaptive:
        return options, [], None
    store = Store(home)
    model = learned_from.model if learned_from is not None else _learning_run(store)
    if model is None:
        raise CprofError("--adaptive learns from a run of this build: build and run it once without "
                         "--adaptive first (cprof profile --adaptive does that by itself)", EXIT_NOT_FOUND)
    counted = choose_counted(model)
    return adaptive_filter(store, options, counted, timed_identities(model, counted), model.id), counted, model.id


def fallbacks(home: str | None = None) -> list[tuple[str, str]]:
    """The C files the last build compiled without instrumentation, each with why (the build itself never fails
    for them)."""
    return [tuple(entry) for entry in last_build(Store(home)).get("fallbacks", [])]


def run_program(args: Sequence[str] = (), options: RunOptions | None = None, home: str | None = None) -> RunsResult:
    """Runs what the last build linked (options.repeat times) and stores the run or group; the launch results, for
    exit statuses and wall times. run() returns the stored run itself."""
    return perform_runs(Store(home), list(args), options or RunOptions())


def run(args: Sequence[str] = (), options: RunOptions | None = None, home: str | None = None) -> Run:
    """Runs what the last build linked with `args` and returns the stored run (a group with options.repeat > 1)."""
    outcome = run_program(args, options, home)
    if outcome.stored is None:
        raise CprofError(f"{outcome.program} recorded nothing, so there is no run to return", EXIT_NOT_FOUND)
    return load(outcome.stored, home)


def profile(sources: Sequence[str] = (), *, command: Sequence[str] | None = None, args: Sequence[str] = (),
            output: str | None = None, compiler_args: Sequence[str] = (), build_options: BuildOptions | None = None,
            run_options: RunOptions | None = None, home: str | None = None) -> Run:
    """Builds, runs and returns the run, as `cprof profile` does. With build_options.adaptive, a first build and
    run with every function timed says which functions to only count."""
    build_options = build_options or BuildOptions()
    learned = None
    if build_options.adaptive:
        build(sources, command=command, output=output, compiler_args=compiler_args,
              options=replace(build_options, adaptive=False), home=home)
        learned = run(args, replace(run_options or RunOptions(), repeat=1, tag=None, output_to_stderr=True), home)
    build(sources, command=command, output=output, compiler_args=compiler_args, options=build_options, home=home,
          learned_from=learned)
    return run(args, run_options, home)


# ---- the store: tags, listing, removing, merging ----

def tags(home: str | None = None) -> dict[str, str]:
    """Every tag and the run or group id it names."""
    return Store(home).tags()


def tag(name: str, ref: str | None = "latest", home: str | None = None) -> tuple[str, str | None]:
    """Names a run or a whole group (default: the latest) so that load and diff can refer to it; an existing tag
    moves. Returns what it names now and what it named before (None for a new tag)."""
    validate_tag(name)
    store = Store(home)
    target = target_of(store.resolve(None if ref == "latest" else ref))
    return target, store.tag(name, target)


def untag(name: str, home: str | None = None) -> str:
    """Removes a tag (the runs stay); returns what it named."""
    validate_tag(name)
    return Store(home).untag(name)


def runs(home: str | None = None) -> list[RunEntry]:
    """The stored runs, oldest first: each with its id, path, group and meta (command, program, exit status...)."""
    return Store(home).runs()


def remove(refs: Sequence[str], home: str | None = None) -> int:
    """Removes runs (a tag or group id removes the whole group) and the tags that named them; returns how many.
    Every reference is resolved before anything is removed: one typo removes nothing."""
    if not refs:
        raise CprofError("name the runs to remove", EXIT_USAGE)
    store = Store(home)
    entries = {e.path: e for reference in refs for e in store.resolve(reference)}
    store.remove(list(entries.values()))
    return len(entries)


def prune(keep: int, home: str | None = None) -> int:
    """Removes all but the newest `keep` untagged runs (a group counts as one; tagged runs always stay); returns
    how many runs went."""
    store = Store(home)
    tagged = set(store.tags().values())
    units = [unit for unit in store.distinct(store.runs())
             if not any(r.id in tagged or (r.group and r.group in tagged) for r in unit)]
    doomed = [entry for unit in units[: max(0, len(units) - keep)] for entry in unit]
    store.remove(doomed)
    return len(doomed)


def merge(refs: Sequence[str], tag: str | None = None, home: str | None = None) -> Run:
    """A new run holding every process of the given runs (fork children, test shards, other machines): its
    figures sum theirs. Returns it."""
    store = Store(home)
    if tag is not None:
        validate_tag(tag)
    # the same run named twice (by tag and id, say) counts once
    named = {(e.path, e.meta.get("only_file")): e for reference in refs for e in store.resolve(reference)}
    entries = list(named.values())
    if len(entries) < 2:
        raise CprofError(f"merge needs at least two different runs; {' '.join(refs)} "
                         f"{'is' if len(refs) == 1 else 'are'} one", EXIT_USAGE)
    # every file is checked before the merged run exists, so that a bad one leaves nothing half made
    sources = [(entry, path) for entry in entries for path in run_files(entry)]
    for entry, path in sources:
        try:
            with open(path, "rb") as handle:
                read_header(handle.read(4096))
        except (OSError, RunFileError) as error:
            raise CprofError(f"cannot merge {path}: {error}", EXIT_CORRUPT) from None
    merged = store.create_run({"merged_from": [e.id for e in entries], "command": ["cprof", "merge", *refs],
                               "status": "finished"})
    for entry, source in sources:
        target = os.path.join(merged.path, f"{entry.id}-{os.path.basename(source)}")
        try:
            os.link(source, target)  # run files never change once their process is gone
        except OSError:
            shutil.copy2(source, target)
    if tag is not None:
        store.tag(tag, merged.id)
    return load(merged.path, home)
