"""CPU-time samples (csrc/sampling.c) made into time: each sampled instruction is resolved, with its inline chain,
by binutils' addr2line, and a count-only function gets the share of its timed caller's self time in which the
samples found it, with the statistical error of that share.

Why a share of the caller's measured self time rather than samples x period: the caller's self time is measured
(and corrected for the guards) by the timers; the samples only say how it divides between the caller's own code
and the count-only functions it ran. Samples in the runtime's own code (the guards) are left out of the division:
that time is what the correction already took away."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from cprof.model.correction import SAMPLE_Z
from cprof.model.symbols import changed_modules, module_of, resolve
from cprof.runfile import FN_COUNTED

RUNTIME = "<cprof>"  # the guard's and the runtime's own instructions
RUNTIME_PREFIXES = ("__cprof_", "cprof_")
# A count-only function's own increment (csrc/cprof_guard.h), inlined into it: its samples are the function's, whose
# estimate the increments' cost is then taken out of (correction.take_out_count_cost). Left out of the division
# like the timed guards' code, that cost was spread over every function of the node and then taken out of the
# counted function a second time (qsort+hash's `compare`, 18 million calls: half of perf's share).
COUNT_GUARDS = ("__cprof_count", "__cprof_count_striped")


@dataclass
class NodeShares:
    """How the samples divide one node's self time: each count-only function's share, and the standard error of
    their shares together (the samples in any of them are one binomial count: adding the parts' errors would
    overstate it)."""

    parts: dict  # count-only FunctionKey -> SampledShare
    taken_err: float


@dataclass
class SampledShare:
    """Of one node's self time: the part a count-only function took, as a fraction with its standard error."""

    share: float
    share_err: float  # one standard error of `share`


UNKNOWN = "<unknown>"  # code that cprof does not instrument (a library, a skipped function)


class Classifier:
    """Tells, for a sampled instruction, which instrumented function was running: the innermost function of its
    inline chain that cprof instruments (uninstrumented code belongs to its nearest instrumented caller, as in
    self times), the runtime, None (a timed function: the node's own time), or UNKNOWN."""

    def __init__(self, counted: dict[str, list], timed_names: set[str]):
        self.counted = counted  # name -> FunctionKeys of count-only functions with that name
        self.timed_names = timed_names

    def classify(self, chain: list[tuple[str, str, int]], path: str | None):
        if path and os.path.basename(path).startswith("libcprofrt"):
            return RUNTIME
        for function, file, _line in chain:
            if function in COUNT_GUARDS:
                continue
            if function.startswith(RUNTIME_PREFIXES):
                return RUNTIME
            keys = self.counted.get(function)
            if keys:
                return _closest_key(keys, file)
            if function in self.timed_names:
                return None
        return UNKNOWN

    def classify_sample(self, ip_chain, ip_path, caller_chain, caller_path):
        """A sample in uninstrumented code (snprintf) belongs to the count-only function that called it, when the
        return address the handler unwound to lands in one; else to the node's own time."""
        category = self.classify(ip_chain, ip_path)
        if category is not UNKNOWN:
            return category
        by_caller = self.classify(caller_chain, caller_path)
        return by_caller if by_caller not in (UNKNOWN, RUNTIME) else None


def _closest_key(keys: list, file: str):
    if len(keys) == 1:
        return keys[0]
    same = [key for key in keys if key.file == file or os.path.basename(key.file) == os.path.basename(file)]
    return same[0] if same else keys[0]


def share_error(share: float, signals: int) -> float:
    """The standard error a share found in `signals` samples is stated with (the report multiplies it by SAMPLE_Z):
    the farther side of its Wilson score interval, over SAMPLE_Z. The textbook error, sqrt(p (1 - p) / n), is 0 at a
    share of 0 or 1: a 27 ms run's four samples, all in one function, gave it all of its caller's time, give or
    take nothing. Signals are the independent observations (a late signal's weight spreads one over several
    periods)."""
    n, z = max(signals, 1), SAMPLE_Z
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(max(share * (1.0 - share), 0.0) / n + z * z / (4 * n * n))
    return max(share - (centre - half), centre + half - share) / z


def shares(samples_by_node: dict, classify) -> dict:
    """node -> NodeShares from node -> {(ip, caller): (weight, signals)}."""
    result = {}
    for node, by_place in samples_by_node.items():
        weights: dict = {}
        program_weight = program_signals = 0
        for place, (weight, signals) in by_place.items():
            category = classify(place)
            if category == RUNTIME:
                continue
            program_weight += weight
            program_signals += signals
            if category is not None:
                weights[category] = weights.get(category, 0) + weight
        if not weights or not program_weight:
            continue
        parts = {key: SampledShare(weight / program_weight, share_error(weight / program_weight, program_signals))
                 for key, weight in weights.items()}
        result[node] = NodeShares(parts, share_error(sum(weights.values()) / program_weight, program_signals))
    return result


def divide_self_time(node, divided: NodeShares) -> None:
    """Takes the count-only functions' shares out of a node's self time (its waiting aside). The correction's
    uncertainty is divided as the time is; each share adds its statistical error, and the node the error of all
    shares together: errors that cancel in a sum of self times, which is why they are also kept apart."""
    raw_base = max(0.0, node.self_ns - node.wait_ns)
    corrected_base = max(0.0, node.corrected_self_ns - node.wait_ns)
    taken = sum(part.share for part in divided.parts.values())
    for key, part in divided.parts.items():
        statistical = corrected_base * SAMPLE_Z * part.share_err
        node.sampled[key] = (raw_base * part.share, corrected_base * part.share,
                             statistical + part.share * node.self_err_ns)
        node.sampled_statistical_err[key] = statistical
    node.self_ns -= raw_base * taken
    node.corrected_self_ns -= corrected_base * taken
    node.self_statistical_err_ns = corrected_base * SAMPLE_Z * divided.taken_err
    node.self_err_ns = node.self_err_ns * (1.0 - taken) + node.self_statistical_err_ns


def apply_samples(raw: dict, nodes: dict, threads: list, flags: dict, calibration) -> None:
    """Takes the count-only functions' sampled share out of each node's self time (nodes: offset -> CallNode of
    one process, threads: its ThreadData, flags: FunctionKey -> FN_* flags). The samples in a
    count-only function include its count increments, the profiler's cost, which correction.take_out_count_cost
    gives back afterwards."""
    modules = raw.get("modules", [])
    # without count-only functions there is nothing the samples would give: a rebuild since is worth no warning
    if not any(thread.counted for thread in threads):
        return
    if changed_modules(modules, "its samples cannot be resolved, so count-only functions keep no time of their own"):
        return
    by_node: dict[int, dict[tuple[int, int], tuple[int, int]]] = {}
    ips_by_module: dict[str, set[int]] = {}
    path_of: dict[int, str | None] = {}
    for _thread, node_offset, ip, caller, weight, signals in raw.get("samples", ()):
        # a return address follows its call: the call itself, a byte before, is in the calling function's code
        # (and in the inline chain of the function that made it), as every unwinder reads it
        caller -= 1
        by_node.setdefault(node_offset, {})[(ip, caller)] = (weight, signals)
        for address in (ip, caller):
            if address not in path_of:
                path_of[address] = module_of(address, modules)
                if path_of[address]:
                    ips_by_module.setdefault(path_of[address], set()).add(address)
    if not by_node:
        for thread in threads:
            thread.sampled_keys.update(thread.counted)
        return
    chains = resolve(ips_by_module, modules)
    counted: dict[str, list] = {}
    for key, value in flags.items():
        if value & FN_COUNTED:
            counted.setdefault(key.name, []).append(key)
    classifier = Classifier(counted, {k.name for k, v in flags.items() if not v & FN_COUNTED})
    found = shares(by_node, lambda pair: classifier.classify_sample(
        chains.get(pair[0], []), path_of.get(pair[0]), chains.get(pair[1], []), path_of.get(pair[1])))
    for node_offset, divided in found.items():
        node = nodes.get(node_offset)
        if node is not None and node.key is not None:  # else outside every timed function: nothing to divide
            divide_self_time(node, divided)
    for thread in threads:  # every count-only function of a sampled thread has a sampled time, zero if unseen
        thread.sampled_keys.update(thread.counted)


SOURCES = {1: "thread CPU-time timer (SIGPROF)"}  # csrc/runfile.h CPROF_SAMPLES_*
NOT_SAMPLED = {2: "SIGPROF already had a handler (the program's own)", 3: "no sampling timer could be made (a "
               "-static link, or timer_create failed)"}


def sampling_summary(processes) -> dict | None:
    """What the run's sampling covered, over its processes (None when none sampled)."""
    sampled = [p for p in processes if p.header.get("sample_source") in SOURCES]
    if not sampled:
        return None
    period = sampled[0].header["sample_period_ns"]
    return {
        "source": SOURCES[sampled[0].header["sample_source"]],
        "period_ns": period,
        "samples_ns": sum(p.sampled_weight * p.header["sample_period_ns"] for p in sampled),
        "outside_ns": sum(p.header["samples_outside"] * p.header["sample_period_ns"] for p in sampled),
        "dropped_ns": sum(p.header["samples_dropped"] * p.header["sample_period_ns"] for p in sampled),
    }


def not_sampled_reason(processes) -> str | None:
    """Why sampling was asked for and did not happen, when it did not."""
    for process in processes:
        reason = NOT_SAMPLED.get(process.header.get("sample_source"))
        if reason:
            return reason
    return None


__all__ = ["Classifier", "NodeShares", "divide_self_time", "RUNTIME", "UNKNOWN", "SAMPLE_Z", "SampledShare",
           "apply_samples", "not_sampled_reason", "sampling_summary", "shares"]
