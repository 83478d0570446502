#!/usr/bin/env python3
"""Prints the README's result tables from the stored results (benchmarks/results/*.json), between the README's
`<!-- results:NAME -->` and `<!-- /results:NAME -->` markers, so that every figure there comes from a stored run
of a script in scripts/.

    python scripts/readme_tables.py          # rewrite the tables in README.md
    python scripts/readme_tables.py --check  # exit 1 when README.md differs from the stored results
"""

from __future__ import annotations

import argparse
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from scripts.layouts import LAYOUT_WORDS  # noqa: E402
from scripts.results import read_results  # noqa: E402

RESULTS = os.path.join(REPO, "benchmarks", "results")
README = os.path.join(REPO, "README.md")
_BLOCK = re.compile(r"(<!-- results:(\w+) -->\n)(.*?)(<!-- /results:\2 -->)", re.DOTALL)


def _source(document: dict) -> str:
    machine = document["machine"]
    return (f"`{document['command']}`, {document['date']}, {machine['cpu'] or 'unknown CPU'} ({machine['cpus']} "
            f"CPUs), gcc {machine['cc']}")


def _header(*columns: str) -> list[str]:
    """A markdown table's first two lines."""
    return ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]


def projects(document: dict) -> str:
    lines = _header("project (Debian source)", "build command", "units", "fell back", "functions instrumented",
                    "workload", "plain", "instrumented", "slowdown", "output identical", "coverage (main thread)",
                    "expected functions")
    for project in document["projects"]:
        where = f", started in `{project['subfolder']}/`" if project["subfolder"] else ""
        for index, workload in enumerate(project["workloads"]):
            expected = ", ".join(f"{name}{'' if seen else ' MISSING'}" for name, seen in workload["expected"].items())
            base, _, variant = project["name"].partition(" (")
            title = f"{base} {project['version']}" + (f" ({variant}" if variant else "")
            head = (f"{title} | `{project['build']}`{where} | {project['units']} | "
                    f"{project['fell_back']} | {project['functions_instrumented']:,}") if index == 0 else " |  |  |  | "
            lines.append(f"| {head} | {workload['name']} (`{' '.join(workload['args'])}`) | "
                         f"{workload['plain_s']:.3f} s | {workload['cprof_s']:.3f} s | {workload['slowdown']}x | "
                         f"{'yes' if workload['identical'] else 'NO'} | {100 * workload['coverage_share']:.1f}% "
                         f"of {workload['covered_run_ms']:.0f} ms | {expected} |")
    lines.append("")
    lines.append(f"Input: every C file of the four source trees, {document['input_bytes'] / 1e6:.1f} MB; times are "
                 f"medians of {document['repeat']} interleaved runs of each program run directly; coverage is that "
                 f"of a `cprof run` of the same workload (a short run's start-up, exec and dynamic loading, lies "
                 f"outside every function). Measured: "
                 + "; ".join(f"{p['name']} {p['measured']}" for p in document["projects"])
                 + f". Last run: {_source(document)}.")
    return "\n".join(lines) + "\n"


def _ms(ns: float) -> str:
    return f"{ns / 1e6:,.1f} ms" if abs(ns) >= 1e5 else f"{ns / 1e3:,.0f} µs"


def accuracy(document: dict) -> str:
    lines = _header("program (as its user builds it)", "calls", "plain (same region)", "cprof raw",
                    "corrected ± uncertainty", "error", "within uncertainty (+ reference noise)",
                    "guard per call: calibrated / actual", "model error")
    for case in document["model_error"]["cases"]:
        within = "yes" if case["within_uncertainty_alone"] else \
            f"with noise ±{_ms(case['reference_noise_ns'])}" if case["within_uncertainty"] else "**NO**"
        error = f"{case['model_error']:+.1%}" if case["conclusive"] else "(too few calls to tell)"
        actual = f"{case['actual_per_call_ns']:.1f} ns" if case["conclusive"] else "-"
        lines.append(f"| {case['name']} | {case['calls']:,} | {_ms(case['plain_ns'])} | {_ms(case['raw_ns'])} | "
                     f"{_ms(case['corrected_ns'])} ± {_ms(case['uncertainty_ns'])} | "
                     f"{case['corrected_error_percent']:+.1f}% | {within} | {case['calibrated_per_call_ns']:.1f} ns / "
                     f"{actual} | {error} |")
    model = document["model_error"]
    lines += ["", f"Model error margin: **{model['margin']:.2f}** of the calibrated cost (the largest deviation where "
              f"the guard's cost stands clear of the noise: {model['worst_case']}), which `cprof/model/correction.py` "
              f"uses as `MODEL_ERROR`; the uncertainties in this table were stated with the margin in force during "
              f"the run, {model['used']:.2f}."]
    ratio, leaf = document.get("ratio"), document.get("leaf")
    if ratio:
        shares = ratio["shares_percent"]
        lines += ["", f"6:3:1 work in three functions: {shares['six']:.2f} / {shares['three']:.2f} / "
                  f"{shares['one']:.2f}% (target: within 1 point: **{'met' if ratio['met'] else 'not met'}**)."]
    if leaf:
        lines += ["", f"A ~{leaf['leaf_true_ns'] / 1e7:.1f} ns leaf called 10M times: leaf "
                  f"{leaf['leaf_corrected_ns'] / 1e7:.1f} ± {leaf['leaf_uncertainty_ns'] / 1e7:.1f} ns vs "
                  f"{leaf['leaf_true_ns'] / 1e7:.1f} ns per call, parent {leaf['parent_corrected_ns'] / 1e7:.1f} ± "
                  f"{leaf['parent_uncertainty_ns'] / 1e7:.1f} ns vs {leaf['parent_true_ns'] / 1e7:.2f} ns (each within "
                  f"its uncertainty: **{'met' if leaf['leaf_within'] and leaf['parent_within'] else 'not met'}**)."]
    lines += ["", f"From {_source(document)}."]
    return "\n".join(lines) + "\n"


_OVERHEAD_COLUMNS = [("plain_ns_per_call", "plain"), ("floor", "floor"), ("gprof", "gprof"), ("uftrace", "uftrace"),
                     ("cprof", "cprof (rdtscp, default)"), ("cprof-fast", "cprof (`CPROF_TIMER=fast`)"),
                     ("cprof-inline", "`--inline-guard`"), ("cprof-inline-fast", "`--inline-guard`, fast"),
                     ("cprof-off", "cprof, `CPROF_DISABLE=1`")]


def overhead(document: dict) -> str:
    lines = _header("program", *(title for _, title in _OVERHEAD_COLUMNS))
    by_count = {}
    for row in document["rows"]:
        cells = [f"{row[key]:,.2f}" if key in row else "not run" for key, _ in _OVERHEAD_COLUMNS]
        count = re.match(r"(\d+) functions", row["program"])
        label = row["program"]
        if count:
            by_count[int(count.group(1))] = row
            label = f"{int(count.group(1)):,} function{'' if count.group(1) == '1' else 's'}"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    small, large = by_count.get(1), by_count.get(document["large"])
    lines.append("")
    if small and large:
        floor_met = all(r["cprof"] <= r["floor"] for r in document["rows"])
        # flat: what cprof adds grows no more from 1 to 10,000 functions than the floor's own growth
        growth = large["cprof"] - small["cprof"]
        floor_growth = large["floor"] - small["floor"]
        lines.append(f"At or below the floor: **{'met' if floor_met else 'not met'}**. Flat in the number of "
                     f"functions: from 1 to {document['large']:,} functions cprof's cost grows {growth:+.1f} ns, the "
                     f"floor's {floor_growth:+.1f} ns, the plain program's own {large['plain_ns_per_call'] - small['plain_ns_per_call']:+.1f} ns "
                     f"(target: within 2 ns of the floor's growth: **{'met' if growth <= floor_growth + 2 else 'not met'}**).")
        lines.append("")
    lines.append(f"ns per call added to the plain program, {document['calls']:,} calls, medians of "
                 f"{document['repeat']} interleaved runs, all rows from one run"
                 + (f"; {', '.join(document['skip_large'])} not run from {document['large']:,} functions on"
                    if document["skip_large"] else "") + f". From {_source(document)}.")
    return "\n".join(lines) + "\n"


def build(document: dict) -> str:
    lines = _header("measure", "plain", "cprof", "ratio (wall)", "ratio (CPU)")
    for scenario in document["scenarios"]:
        lines.append(f"| Lua 5.4 `{document['make']}`: {scenario['name']} | {scenario['plain_wall_s']:.2f} s | "
                     f"{scenario['cprof_wall_s']:.2f} s | {scenario['cprof_wall_s'] / scenario['plain_wall_s']:.2f}x | "
                     f"{scenario['cprof_cpu_s'] / scenario['plain_cpu_s']:.2f}x |")
    lines += ["", f"Medians of {document['repeat']} interleaved rounds. From {_source(document)}."]
    if document["breakdown"]:
        lines += ["", "Where a cold instrumented build's time goes, CPU seconds summed over Lua's units:", "",
                  *_header("phase", "CPU s", "x the plain compile")]
        lines += [f"| {p['phase']} | {p['cpu_s']} | {p['of_plain']} |" for p in document["breakdown"]]
    return "\n".join(lines) + "\n"


def instrument(document: dict) -> str:
    unit = document["sqlite3"]
    return (f"Instrumenting {document['unit']}: {unit['lines']:,} preprocessed lines, {unit['functions']:,} functions, "
            f"**{unit['total_s']:.2f} s** (scan {unit['scan_s']:.2f}, parse {unit['parse_s']:.2f}, decide "
            f"{unit['decide_s']:.2f}, splice {unit['splice_s']:.2f}; target 10 s: "
            f"**{'met' if unit['total_s'] <= 10 else 'not met'}**), medians of {document['repeat']}. From "
            f"{_source(document)}.\n")


def csmith(document: dict) -> str:
    compared = document["passed"] + document["failed"]
    return (f"csmith random programs, plain against instrumented output: **{document['passed']} of {compared}** "
            f"compared programs identical ({document['failed']} failed; {document['skipped']} of "
            f"{document['programs']} ran over {document['timeout_s']:g} s even plain and were skipped; target 100%: "
            f"**{'met' if not document['failed'] else 'not met'}**). From {_source(document)}.\n")


def _layouts(document: dict) -> str:
    """The layouts a benchmark built the plain program in (scripts/layouts.py), in words; results stored before
    they were recorded used the first two."""
    words = [LAYOUT_WORDS[flags] for flags in document.get("layouts", list(LAYOUT_WORDS)[:2])]
    return f"{', with '.join(words[:-1])}, and with {words[-1]} (scripts/layouts.py)"


def adaptive(document: dict) -> str:
    lines = _header("program", "plain", "full mode", "adaptive (`--adaptive`)", "adaptive, profiling off",
                    "the same with `--off-copies`", "functions counted only", "counts identical to the full mode's",
                    "adaptive self times summed, against plain", "plain, laid out otherwise",
                    "what a counted call cost")
    for program in document["programs"]:
        off, off_copies = (f"{program[key]:.2f}x" if program.get(key) is not None else "-"
                           for key in ("off_slowdown", "off_copies_slowdown"))
        per_count = f"{program['count_cost_ns']:.2f} ns" if program.get("count_cost_ns") is not None else "-"
        if program.get("self_sum_error_percent") is None:
            summed = "- (its main thread waits for its workers)"
        else:
            stated, noise = program.get("self_sum_uncertainty_percent"), program.get("reference_noise_percent")
            summed = f"{program['self_sum_error_percent']:+.1f}%" + (
                f" (stated ± {stated:.1f}%, plain's noise {noise:.1f}%)" if stated is not None else "")
        relaid = " / ".join(f"{r:.2f}x" for r in program.get("relaid_ratios", ())) or "-"
        lines.append(f"| {program['name']} | {program['plain_ms']:.1f} ms | {program['full_slowdown']:.2f}x | "
                     f"{program['adaptive_slowdown']:.2f}x | {off} | {off_copies} | {program['counted']} of "
                     f"{program['functions']} | "
                     f"{'yes' if program['counts_identical'] else '**NO**'} ({program['stable_functions']} functions "
                     f"whose count two full runs agree on) | {summed} | {relaid} | {per_count} |")
    for program in document["programs"]:
        if program.get("differing"):
            lines += ["", f"{program['name']}: counts that differ from the full mode's: "
                      f"{'; '.join(program['differing'])}."]
    lines += ["", f"Medians of {document['repeat']} interleaved runs, after an untimed one of each; slowdowns against "
              "the plain program; what a "
              "counted call cost is the main thread's self times with the timed guards' cost taken out but none "
              "given back for the counts, over plain, per counted call (the report gives back their median over "
              "the programs whose noise and layout spread come to 0.1 ns a counted call or less, `COUNT_COST_NS`); "
              f"plain, laid out otherwise: the plain program built again with {_layouts(document)}, its time "
              "over plain's. From "
              f"{_source(document)} (a run with --only keeps the other programs' earlier results)."]
    return "\n".join(lines) + "\n"


def _points(program: dict, key: str) -> str:
    """A largest difference and where, as "1.2 (function)"; "-" in results from before it was measured."""
    return f"{program[key + '_difference_points']:.1f} ({program[key + '_worst']})" if key + "_worst" in program \
        else "-"


def shares(document: dict) -> str:
    lines = _header("program", "functions only counted", "largest difference in the top 10 (points)",
                    "where", "perf against itself, laid out otherwise (points)",
                    "perf: the instrumented program against plain (points)",
                    "cprof against perf on the instrumented program (points)", "the top 10: perf / cprof")
    for program in document["programs"]:
        top = "; ".join(f"{row['function']} {row['perf']:.1f}/{row['cprof']:.1f}"
                        + (" (sampled)" if row["time_source"] == "sampled" else "") for row in program["top"])
        lines.append(f"| {program['name']} | {program['counted']} | {program['max_difference_points']:.1f} | "
                     f"{program['worst']} | {_points(program, 'layout')} | {_points(program, 'instrumented')} | "
                     f"{_points(program, 'reading')} | {top} |")
    lines += ["", f"Self-time shares in percent, each side summed over {document['repeat']} runs of the program built "
              f"with `{document['flags']}`: perf's samples (each given to the innermost function of its call chain that "
              f"cprof instruments) against cprof's adaptive mode (timed functions measured, count-only ones "
              f"sampled); perf against itself: perf's shares of the plain program built again with "
              f"{_layouts(document)}, against the default build's, the largest difference in its top 10; perf on "
              f"the instrumented program itself (run outside cprof, not sampled, cprof's runtime left out), "
              f"against perf on plain (what instrumenting changed in the program) and against cprof (how cprof "
              f"read the program it ran). From {_source(document)}."]
    return "\n".join(lines) + "\n"


def heap(document: dict) -> str:
    cost = document["cost"]
    lines = _header("per malloc+free pair", *cost["per_pair_ns"].keys())
    lines.append("| time | " + " | ".join(f"{v:.1f} ns" for v in cost["per_pair_ns"].values()) + " |")
    lines.append("| added to the plain program | - | " + " | ".join(f"{v:.1f} ns" for v in cost["added_ns"].values())
                 + " |")
    lines += ["", f"Target: at most a tenth of heaptrack's added cost ({cost['target_ns']:.1f} ns): "
              f"**{'met' if cost['met'] else 'not met'}**. Each figure is the slope between runs of "
              f"{cost['pairs'][0]:,} and {cost['pairs'][1]:,} pairs (medians of {document['repeat']} interleaved "
              "runs), so start-up is left out.", ""]
    lua = document["lua"]
    names = {"alloc_count": "allocations", "alloc_bytes": "bytes allocated", "free_count": "frees",
             "peak_bytes": "peak heap", "live_bytes": "live at exit"}
    lines += _header(f"Lua 5.4, `{lua['script']}`", "heaptrack", "cprof", "difference")
    for key, label in names.items():
        difference = lua["difference_percent"][key]
        lines.append(f"| {label} | {lua['heaptrack'][key]:,} | {lua['cprof'][key]:,} | "
                     f"{'-' if difference is None else f'{difference:+.3f}%'} |")
    for row in lua["top_functions"]:
        lines.append(f"| allocations from `{row['function']}` (a function heaptrack names first) | "
                     f"{row['heaptrack_calls']:,} | {row['cprof_allocations']:,} | {row['difference_percent']:+.3f}% |")
    own = lua["heaptrack"]["heaptrack_own"]
    lines += ["", f"Within 1%: **{'met' if lua['met'] else 'not met'}**. heaptrack's figures are summed from its "
              f"own trace, less {own['alloc_count']} allocation ({own['alloc_bytes']:,} bytes) that its preloaded "
              "library makes at start-up; the two are separate runs of the same script (Lua's own count varies by a "
              "few dozen from run to run). heaptrack names the function whose frame calls the allocator; Lua's "
              "`l_alloc` returns `realloc`'s result, so in the plain build it jumps there and heaptrack names its "
              "caller, which cprof's figure follows. From "
              f"{_source(document)}."]
    return "\n".join(lines) + "\n"


def trace(document: dict) -> str:
    lines = _header("per call", *document["per_call_ns"].keys())
    lines.append("| time | " + " | ".join(f"{v:.1f} ns" for v in document["per_call_ns"].values()) + " |")
    lines.append("| added by the trace | - | " + " | ".join(f"{v:.1f} ns" for v in document["added_ns"].values())
                 + " |")
    lines += ["", f"{document['bytes_per_call']:.0f} bytes of run file per recorded call. Each figure is the slope "
              f"between runs of {document['calls'][0]:,} and {document['calls'][1]:,} calls of a ~5 ns leaf (medians "
              f"of {document['repeat']} interleaved runs), so start-up is left out. From {_source(document)}."]
    return "\n".join(lines) + "\n"


def _size(count: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"


def views_lua(document: dict) -> str:
    traced, checks = document["trace"], document["checks"]
    lines = _header("output", "command", "size", "time")
    for name, output in document["outputs"].items():
        lines.append(f"| {name} | `{output['command']}` | {_size(output['bytes'])} | {output['seconds']:.1f} s |")
    chrome = checks["chrome"]
    lines += ["", f"The traced run recorded {traced['calls_recorded']:,} of the {traced['calls_made']:,} calls Lua made "
              f"({'the trace reached its default 64 MiB limit' if traced['stopped_at_limit'] else 'all of them'}). "
              f"Read back: `callgrind_annotate` totals {checks['callgrind_annotate_total']:,} ns and `go tool pprof` "
              f"{checks['go_pprof_total']:,} ns, against the report's {checks['report_self_ns']:,} ns of self time "
              f"(pprof rounds each path to whole ns); the Chrome JSON's {chrome['events']:,} events, "
              f"{chrome['not_nested']} of them out of nesting. From {_source(document)}."]
    return "\n".join(lines) + "\n"


def flame(document: dict) -> str:
    tree, outputs = document["tree"], document["outputs"]
    svg = outputs["svg"]
    lines = _header(f"{tree['paths']:,} call paths", "size", "time")
    for name, label in (("svg", "flamegraph SVG (`cprof flame`)"), ("folded", "folded stacks (`cprof export`)"),
                        ("speedscope", "speedscope JSON (`cprof export --format speedscope`)")):
        lines.append(f"| {label} | {_size(outputs[name]['bytes'])} | {outputs[name]['seconds']:.2f} s |")
    exports = f"median of {document['export_repeat']}" if document["export_repeat"] > 1 else "one run"
    lines += ["", f"The run: one thread, {tree['functions']:,} functions, call paths {tree['depth_median']} deep "
              f"(median) to {tree['depth_max']}, up to {tree['fanout_max']:,} callees under one caller, "
              f"{100 * tree['narrow_share']:.2f}% of the paths under a pixel wide. The SVG draws {svg['frames']:,} "
              f"frames, {svg['merged_frames']:,} of them grey ones that stand for the narrow callees of a caller. "
              f"Targets for the SVG, {document['target_seconds']:g} s and {document['target_bytes'] / 1e6:g} MB: "
              f"**{'met' if document['met'] else 'not met'}**. Times include writing the file; the SVG's are the "
              f"median of {document['repeat']} renders, each export's {exports}. From {_source(document)}."]
    return "\n".join(lines) + "\n"


def ffi(document: dict) -> str:
    functions = document["functions"]
    lines = _header("ns a call", *functions)
    labels = {"cprof": "cprof's binding (libffi)", "ctypes": "ctypes", "cffi": "cffi (ABI mode)",
              "cprof, recording": "cprof's binding, profiling on", "empty loop": "the bare loop"}
    for caller, label in labels.items():
        lines.append(f"| {label} | " + " | ".join(f"{f['ns_per_call'][caller]:.0f}" for f in functions.values()) + " |")
    lines += ["", f"Medians of {document['repeat']} side-by-side rounds of {document['calls']:,} calls each, loop "
              f"included, profiling paused but for the one row (crc32 on {document['crc32_bytes']} bytes). Target, "
              f"no slower than ctypes: **{'met' if document['met'] else 'not met'}**. From {_source(document)}."]
    return "\n".join(lines) + "\n"


TABLES = {"trace": ("trace.json", trace), "views_lua": ("views_lua.json", views_lua), "heap": ("heap.json", heap), "projects": ("projects.json", projects), "adaptive": ("adaptive.json", adaptive),
          "shares": ("shares.json", shares), "accuracy": ("accuracy.json", accuracy),
          "overhead": ("overhead.json", overhead), "build": ("build.json", build),
          "instrument": ("instrument.json", instrument), "csmith": ("csmith.json", csmith),
          "flame": ("flame.json", flame), "ffi": ("ffi.json", ffi)}


def rendered(readme: str) -> str:
    def replace(match: re.Match) -> str:
        name = match.group(2)
        if name not in TABLES:
            return match.group(0)
        file, render = TABLES[name]
        return match.group(1) + render(read_results(os.path.join(RESULTS, file))) + match.group(4)

    return _BLOCK.sub(replace, readme)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that README.md matches the results")
    args = parser.parse_args()
    with open(README) as handle:
        current = handle.read()
    wanted = rendered(current)
    if args.check:
        if wanted != current:
            print("README.md's result tables differ from benchmarks/results: run scripts/readme_tables.py")
            return 1
        return 0
    with open(README, "w") as handle:
        handle.write(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
