"""CPU-time sampling (csrc/sampling.c, cprof/model/samples.py): count-only functions get a self time from samples,
taken out of their timed callers' self time, with a statistical uncertainty; samples survive exec and fork."""

from __future__ import annotations

import re

import pytest

from conftest import by_name, validate
from cprof.model.correction import Calibration

# Each process burns a fixed amount of its own CPU time (not a fixed amount of work), so that the number of samples
# does not depend on the machine's speed. `leaf` (count-only, inlined by gcc) and `own` (timed) do the same work
# per call; `work` itself does almost nothing but call them.
BURNER = r"""
    #include <stdio.h>
    #include <stdlib.h>
    #include <time.h>
    #include <unistd.h>
    static unsigned leaf(unsigned x) { for (int i = 0; i < 40; i++) x = x * 1103515245u + 12345u; return x; }
    static unsigned own(unsigned x) { for (int i = 0; i < 40; i++) x = x * 2654435761u + 1013904223u; return x; }
    static double cpu_ms(void) {
        struct timespec now;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
        return now.tv_sec * 1e3 + now.tv_nsec / 1e6;
    }
    __attribute__((noinline)) unsigned work(double ms) {
        unsigned x = 1;
        double end = cpu_ms() + ms;
        while (cpu_ms() < end)
            for (int i = 0; i < 2000; i++) { x = leaf(x); x = own(x); }
        return x;
    }
    int main(int argc, char **argv) {
        int generations = argc > 1 ? atoi(argv[1]) : 0;
        unsigned x = work(generations ? 60 : 400);
        if (generations > 1) {  /* this process image is replaced: the next one profiles on */
            char next[16];
            snprintf(next, sizeof next, "%d", generations - 1);
            fflush(stdout);
            execl(argv[0], argv[0], next, (char *)NULL);
            return 99;
        }
        printf("%u\n", x & 1);
        return 0;
    }
"""


def test_count_only_function_gets_its_sampled_share_of_its_callers_self_time(project):
    project.write("burner.c", BURNER)
    result = project.cprof("profile", "--count-only", "leaf", "burner.c", "--json", "--", "-O2", "-g")
    assert result.returncode == 0, result.stderr
    report = result.json()
    validate(report, "report-4.json")
    sampling = report["sampling"]
    assert sampling is not None and sampling["period_ns"] == 1_000_000 and sampling["dropped_ns"] == 0
    assert sampling["samples_ns"] >= 150_000_000  # of the 400 ms the program burns inside instrumented calls
    functions = by_name(report)
    leaf, own, work = functions["leaf"], functions["own"], functions["work"]
    assert not leaf["timed"] and leaf["time_source"] == "sampled" and own["time_source"] == "measured"
    assert leaf["total_ns"] is None and leaf["self_err_ns"] is not None and leaf["self_err_ns"] > 0
    # leaf does about half of the work (the true share is ~45%: its exact value is not the point here, and a
    # fixed bound far from it keeps the test free of sampling luck, even at a 100 Hz kernel tick, 40 samples:
    # four standard errors): found in work's self time, taken out of it
    total_self = sum(f["self_ns"] for f in report["functions"] if f["self_ns"] is not None)
    assert leaf["self_ns"] > 0.15 * total_self
    assert work["self_ns"] < 0.5 * leaf["self_ns"]
    # nothing lost: the split moves time, the sum stays the measured one
    assert abs(total_self - work["total_ns"] - functions["main"]["self_ns"]) < 0.01 * work["total_ns"]
    table = project.cprof("report").stdout
    assert "leaf [counted, sampled]" in table and "their self time sampled every 1.00 ms of CPU time" in table
    # the tree shows it where it ran: under work, beside own
    tree = project.cprof("report", "--tree").stdout
    assert re.search(r"work .*\n(.*\n)*\s+[├└]─ .*leaf  \[counted, sampled self time\]", tree), tree


def test_sampling_can_be_switched_off_and_is_then_said_to_be_off(project):
    project.write("burner.c", BURNER)
    assert project.cprof("build", "--count-only", "leaf", "burner.c", "--", "-O2", "-g").returncode == 0
    result = project.cprof("run", "--", env={"CPROF_SAMPLE_HZ": "0"})
    assert result.returncode == 0, result.stderr
    report = project.cprof("report", "--json").json()
    assert report["sampling"] is None and by_name(report)["leaf"]["time_source"] == "none"
    assert "leaf [counted]" in project.cprof("report").stdout


def test_a_program_that_replaces_itself_keeps_running_and_every_image_is_sampled(project):
    """exec in a sampled process: the exec wrappers stop the thread's timer first, so no sample signal can reach
    the new program (where SIGPROF would kill it)."""
    project.write("burner.c", BURNER)
    assert project.cprof("build", "--count-only", "leaf", "burner.c", "--", "-O2", "-g").returncode == 0
    result = project.cprof("run", "--", "12")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() in ("0", "1")
    report = project.cprof("report", "--json").json()
    assert by_name(report)["work"]["calls"] == 12  # one run file per process image, all of this run
    assert report["sampling"]["samples_ns"] > 0


def test_a_program_with_its_own_sigprof_handler_is_not_sampled(project):
    project.write("own_handler.c", r"""
        #include <signal.h>
        #include <stdio.h>
        static void handler(int signal) { (void)signal; }
        static int leaf(int x) { return x * 3 + 1; }
        static int run(void) { int x = 0; for (int i = 0; i < 5000; i++) x = leaf(x); return x; }
        __attribute__((constructor)) static void install(void) { signal(SIGPROF, handler); }
        int main(void) { printf("%d\n", run() & 1); return 0; }
    """)
    # the constructor left uninstrumented, so that it runs before the runtime starts (at main's first call)
    result = project.cprof("profile", "--count-only", "leaf", "--exclude-fn", "install", "own_handler.c", "--json")
    assert result.returncode == 0, result.stderr
    report = result.json()
    assert report["sampling"] is None and by_name(report)["leaf"]["time_source"] == "none"
    assert "SIGPROF already had a handler" in project.cprof("report").stdout


def test_time_in_a_library_leaf_reaches_the_count_only_function_that_called_it(project):
    """memcmp is libc's, uninstrumented and frameless: the sample's caller word (its return address) gives its time
    to `same`, the count-only function that called it, not to `work`, the timed node. (Its length changes from call
    to call: the plain build moves a call of the same memcmp out of the loop, and so would an instrumented one
    whose increment gcc could move.)"""
    project.write("leafcall.c", r"""
        #include <stdio.h>
        #include <string.h>
        #include <time.h>
        static char left[8192], right[8192];
        static int same(size_t n) { return memcmp(left, right, n) == 0; }
        static double cpu_ms(void) {
            struct timespec now;
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
            return now.tv_sec * 1e3 + now.tv_nsec / 1e6;
        }
        __attribute__((noinline)) long work(size_t n) {
            long equal = 0;
            double end = cpu_ms() + 400;
            while (cpu_ms() < end)
                for (int i = 0; i < 1000; i++) equal += same(n - (size_t)(i & 7));  /* not hoisted: n moves */
            return equal;
        }
        int main(int argc, char **argv) { printf("%d\n", work(sizeof left - (size_t)argc + 1) > 0); return 0; }
    """)
    result = project.cprof("profile", "--count-only", "same", "leafcall.c", "--json", "--", "-O2", "-g")
    assert result.returncode == 0, result.stderr
    functions = by_name(result.json())
    assert functions["same"]["time_source"] == "sampled"
    # nearly all the time is memcmp's; a fixed bound far from the truth keeps sampling luck out of the test
    assert functions["same"]["self_ns"] > 2 * functions["work"]["self_ns"]


def test_time_deep_in_a_library_reaches_the_count_only_function_that_called_it(project):
    """snprintf runs through several of libc's functions, each with a frame of its own: the return address into
    `format`, found on the stack below `work`'s timed frame, gives their time to `format`, as perf's unwinding
    does, not to `work`. A code pointer on the stack that follows no call (the comparator qsort keeps) does not
    count: qsort's own time stays with `sort_all`, its timed caller."""
    project.write("deepcall.c", r"""
        #include <stdio.h>
        #include <stdlib.h>
        #include <time.h>
        static char buffer[256];
        static int values[512];
        static double cpu_ms(void) {
            struct timespec now;
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
            return now.tv_sec * 1e3 + now.tv_nsec / 1e6;
        }
        __attribute__((noinline)) int format(int i) {
            /* not a tail call: a jump to snprintf would leave no return address into format (nor would perf's
               unwinding find format) */
            return snprintf(buffer, sizeof buffer, "%d %.6f %s %x %g", i, i * 0.5, "abc", i, i * 1.5) + 1;
        }
        __attribute__((noinline)) long work(void) {
            long length = 0;
            double end = cpu_ms() + 300;
            for (int i = 0; cpu_ms() < end; i++)
                for (int j = 0; j < 100; j++) length += format(i * 100 + j);
            return length;
        }
        __attribute__((noinline)) int compare(const void *a, const void *b) {
            return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b);
        }
        __attribute__((noinline)) long sort_all(void) {
            long rounds = 0;
            double end = cpu_ms() + 300;
            for (; cpu_ms() < end; rounds++) {
                for (int i = 0; i < 512; i++) values[i] = (i * 7919) % 512;
                qsort(values, 512, sizeof values[0], compare);
            }
            return rounds;
        }
        int main(void) { printf("%d %d\n", work() > 0, sort_all() > 0); return 0; }
    """)
    result = project.cprof("profile", "--count-only", "format", "--count-only", "compare", "deepcall.c", "--json",
                           "--", "-O2", "-g")
    assert result.returncode == 0, result.stderr
    functions = by_name(result.json())
    assert functions["format"]["time_source"] == "sampled"
    # nearly all of work's time is snprintf's; fixed bounds far from the truth keep sampling luck out of the test
    assert functions["format"]["self_ns"] > 2 * functions["work"]["self_ns"]
    # qsort's own code (its loops, its calls of compare) is sort_all's: about half of the two together (perf finds
    # msort a little above compare); were the comparator's pointer taken for a return address, nearly none
    assert functions["compare"]["time_source"] == "sampled"
    sorting = functions["sort_all"]["self_ns"] + functions["compare"]["self_ns"]
    assert functions["sort_all"]["self_ns"] > 0.2 * sorting


def test_a_sample_on_a_coroutine_stack_near_the_timed_frame_reads_no_unmapped_memory(project):
    """The stack between the interrupted code and the innermost timed frame is searched for a return address: on
    a coroutine's stack mapped a few MB below the thread's, that span crosses unmapped memory, which the search
    must not touch (a plain read there would kill the program with SIGSEGV)."""
    project.write("coroutine.c", r"""
        #include <stdio.h>
        #include <sys/mman.h>
        #include <time.h>
        #include <ucontext.h>
        #define STACK_BYTES (64 * 1024)
        static ucontext_t main_context, coroutine_context;
        static char buffer[128];
        static long formatted;
        static double cpu_ms(void) {
            struct timespec now;
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
            return now.tv_sec * 1e3 + now.tv_nsec / 1e6;
        }
        __attribute__((noinline)) int format(int i) {
            return snprintf(buffer, sizeof buffer, "%d %.3f", i, i * 0.25) + 1;
        }
        static void body(void) {
            double end = cpu_ms() + 300;
            for (int i = 0; cpu_ms() < end; i++) formatted += format(i);
        }
        __attribute__((noinline)) void run_coroutine(char *stack) {
            getcontext(&coroutine_context);
            coroutine_context.uc_stack.ss_sp = stack;
            coroutine_context.uc_stack.ss_size = STACK_BYTES;
            coroutine_context.uc_link = &main_context;
            makecontext(&coroutine_context, body, 0);
            swapcontext(&main_context, &coroutine_context);
        }
        int main(void) {
            char here;
            /* a few MB below this stack, with unmapped memory between: where a coroutine library's mmap may land */
            char *wanted = (char *)(((unsigned long)&here - (8ul << 20)) & ~4095ul);
            char *stack = mmap(wanted, STACK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (stack == MAP_FAILED) return 2;
            run_coroutine(stack);
            printf("%d\n", formatted > 0);
            return 0;
        }
    """)
    result = project.cprof("profile", "--count-only", "format", "--count-only", "cpu_ms", "--count-only", "body",
                           "coroutine.c", "--json", "--", "-O2", "-g")
    assert result.returncode == 0, result.stderr
    report = result.json()
    assert report["run"]["exit_status"] in (None, 0) and report["sampling"]["samples_ns"] > 0
    assert by_name(report)["format"]["calls"] > 1000


def test_samples_of_a_program_rebuilt_since_the_run_are_not_misread(project):
    """Instructions resolve against the files on disk: once the program is rebuilt, an older run's samples would
    land in whatever the new build put at those addresses, so they are not used, and the user is told."""
    project.write("burner.c", BURNER)
    assert project.cprof("build", "--count-only", "leaf", "burner.c", "--", "-O2", "-g").returncode == 0
    assert project.cprof("run", "--").returncode == 0
    assert project.cprof("build", "--count-only", "leaf", "burner.c", "--", "-O1", "-g").returncode == 0
    result = project.cprof("report", "--json")
    assert by_name(result.json())["leaf"]["time_source"] == "none"
    assert "changed since the run: its samples cannot be resolved" in result.stderr
    # an adaptive build learning from that run needs no samples (it learns time per call): nothing to warn of
    learning = project.cprof("build", "--adaptive", "burner.c", "--", "-O1", "-g")
    assert learning.returncode == 0 and "found them too cheap to time" in learning.stderr, learning.stderr
    assert "changed since the run" not in learning.stderr


def test_a_counted_call_is_given_back_at_what_real_programs_pay_for_one():
    """A counted call gives back what the benchmarks' real programs paid per counted call (COUNT_COST_NS), striped
    or not; never less than the increment among work this machine measured."""
    from cprof.model.correction import COUNT_COST_NS

    assert Calibration(count_ns=0.1, measured=True).count_cost_ns == pytest.approx(COUNT_COST_NS)
    assert Calibration(count_ns=2.0, measured=True).count_cost_ns == pytest.approx(2.0)


def test_count_increments_no_sample_found_come_out_of_every_self_time():
    """A run too short for samples to find a count-only function still ran its increments inside the thread's
    calls: their cost comes out of every self time in proportion (no share moves for it), and its possible size
    joins their uncertainty. A function the samples found gives it back out of its own estimate; what is more than
    its estimate is treated as not found."""
    from cprof.model.correction import COUNT_COST_NS, COUNT_ERROR_NS, take_out_count_cost
    from cprof.model.run import CallNode, FunctionKey, ThreadData

    root = CallNode(key=None)
    outer, inner, leaf, seen, rare = (FunctionKey(name, "f.c", line) for name, line in
                                      (("outer", 1), ("inner", 2), ("leaf", 3), ("seen", 4), ("rare", 5)))
    first, second = root.child(outer), root.child(outer).child(inner)
    first.corrected_self_ns, second.corrected_self_ns = 3000.0, 1000.0
    first.corrected_total_ns, second.corrected_total_ns = 4420.0, 1420.0
    second.sampled[seen] = (500.0, 400.0, 0.0)
    second.sampled[rare] = (30.0, 20.0, 0.0)
    thread = ThreadData(0, 1, "t", root, 0.0, 1.0, 0, counted={leaf: 100, seen: 200, rare: 1000})
    calibration = Calibration(count_ns=0.1, measured=True)
    cost = COUNT_COST_NS  # what a counted call gives back
    take_out_count_cost(thread, calibration)
    elsewhere = 100 * cost + (1000 * cost - 20)  # leaf, unseen; rare, beyond the 20 ns its samples found
    total = 3000 + 1000 + (400 - 200 * cost) + 0
    keep = (total - elsewhere) / total
    assert first.corrected_self_ns == pytest.approx(3000 * keep)
    assert second.corrected_self_ns == pytest.approx(1000 * keep)
    assert second.sampled[seen][1] == pytest.approx((400 - 200 * cost) * keep)  # found: out of its own estimate
    assert second.sampled[rare][1] == 0
    elsewhere_err = max(cost, COUNT_ERROR_NS - cost) * (100 + 1000 * (1000 * cost - 20) / (1000 * cost))
    assert first.self_err_ns == pytest.approx(elsewhere_err * 3000 / total)
    # the sum of all self times lost exactly the increments' cost
    after = first.corrected_self_ns + second.corrected_self_ns + sum(v[1] for v in second.sampled.values())
    assert after == pytest.approx(3000 + 1000 + 400 + 20 - (100 * cost + 200 * cost + 1000 * cost))
    assert thread.count_cost_ns == pytest.approx(100 * cost + 200 * cost + 1000 * cost)  # what the benchmark reads
    # and the totals hold what their self times and their callees' still hold
    assert second.corrected_total_ns == pytest.approx(after - first.corrected_self_ns)
    assert first.corrected_total_ns == pytest.approx(after)


def test_the_samples_statistical_errors_cancel_in_a_sum_of_self_times():
    """Samples only divide a measured self time among the functions that ran in it: the share they take out of
    the caller is one binomial count (its error is not the sum of the parts' errors), and in a sum of self times,
    the table's total, their statistical errors cancel; only the corrections' errors remain."""
    import math

    from cprof.model.run import CallNode, FunctionKey, _accumulate, summed_self_err_ns
    from cprof.model.samples import divide_self_time, shares

    caller, first, second = (FunctionKey(name, "f.c", line) for name, line in (("caller", 1), ("a", 2), ("b", 3)))
    # 100 samples of one node: 30 in a, 30 in b, 40 in the caller's own code
    places = {("a", 0): (30, 30), ("b", 0): (30, 30), ("own", 0): (40, 40)}
    found = shares({7: places}, lambda place: {"a": first, "b": second}.get(place[0]))[7]
    assert found.parts[first].share == pytest.approx(0.3) and found.parts[second].share == pytest.approx(0.3)
    # about the textbook binomial error with 100 samples (the Wilson interval's farther side, a little wider)
    assert math.sqrt(0.6 * 0.4 / 100) <= found.taken_err < 1.1 * math.sqrt(0.6 * 0.4 / 100)
    assert found.taken_err < found.parts[first].share_err + found.parts[second].share_err
    # four samples, all in one function: its share is 1, and not give or take nothing (the textbook error is 0)
    few = shares({7: {("a", 0): (4, 4)}}, lambda place: first)[7]
    assert few.parts[first].share == 1.0 and 2 * few.parts[first].share_err == pytest.approx(0.5)

    root = CallNode(key=None)
    node = root.child(caller)
    node.calls = 1
    node.self_ns = node.corrected_self_ns = node.total_ns = node.corrected_total_ns = 1_000_000.0
    node.self_err_ns = 1000.0  # the guards' correction
    divide_self_time(node, found)
    out: dict = {}
    _accumulate(root, out, corrected=True)
    assert sum(item.self_ns for item in out.values()) == pytest.approx(1_000_000.0)
    assert out[first].self_ns == pytest.approx(300_000.0) and out[caller].self_ns == pytest.approx(400_000.0)
    # the correction's 1000 ns, divided as the time was: the samples add nothing to the sum's uncertainty
    assert summed_self_err_ns(out.values()) == pytest.approx(1000.0)
    assert sum(item.self_err_ns for item in out.values()) > 100_000.0  # each function's own error is wide


def test_a_count_only_functions_own_increment_is_its_time_and_a_timed_guards_is_the_runtimes():
    """The increment inlined into a count-only function (addr2line names it __cprof_count, inside the function) is
    the function's time, which the give-back then takes the increments' cost out of; left out of the division,
    that cost was spread over the node and taken out of the function a second time. A timed guard's code stays
    the runtime's: the correction took its cost away."""
    from cprof.model.run import FunctionKey
    from cprof.model.samples import RUNTIME, Classifier

    compare = FunctionKey("compare", "q.c", 23)
    classifier = Classifier({"compare": [compare]}, {"benchmark"})
    increment = [("__cprof_count", "cprof_guard.h", 71), ("compare", "q.c", 24)]
    striped = [("__cprof_count_striped", "cprof_guard.h", 95), ("compare", "q.c", 24)]
    assert classifier.classify(increment, "/tmp/q") == compare == classifier.classify(striped, "/tmp/q")
    timed_guard = [("__cprof_enter_fast", "cprof_guard.h", 170), ("__cprof_enter", "cprof_guard.h", 240),
                   ("benchmark", "q.c", 51)]
    assert classifier.classify(timed_guard, "/tmp/q") == RUNTIME
    assert classifier.classify([("benchmark", "q.c", 52)], "/tmp/q") is None
