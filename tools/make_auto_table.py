#!/usr/bin/env python3
"""make_auto_table: measure highway against onednn and write auto's decision table (DESIGN §5).

Runs bench/convkit_bench over every shape set, every op and direction, for highway and onednn, at
1 and 2 threads (Google Benchmark repetitions in random interleaved order, medians), then fits
rules that say when onednn goes first, and writes them to api/src/auto_rules.cpp as the table of
this machine's CPU vendor (the other vendors' tables stay as they are). Everything not
covered by a rule stays on highway (our own path), so a rule needs a clear margin.

How the rules are fitted (greedy rule induction, one class at a time):
  * a class is an op and direction with a kernel-size class (1, 2, 3, 4-5, >= 6), a stride
    class (1, >= 2), a groups class (dense, grouped, depthwise) and the kind of call (plan, or
    one-shot call: convkit_bench's "_oneshot" ops, which pay each backend's per-call set-up): the
    same code path in each backend (highway's stride-1 3x3 layers run Winograd, its strided 3x3
    backward data the phase kernels, 2x2 stride 2 a 1x1 convolution and a shuffle);
  * within a class, a rule is the class itself or the class narrowed by one or two thresholds
    (on two features) among threads, stride, the kernel's shorter side (1 for 1xK and Kx1
    kernels), input or output channels, output pixels per image,
    batch and work (multiply-adds or window reads per call, where fixed costs rule); thresholds sit
    at the geometric midpoint between measured values, so they generalise to the shapes between;
  * a narrowed rule must cover two shapes at least (a whole class may rest on one: the class is
    what generalises, e.g. the only grouped 3x3 layer measured);
  * a rule never reaches below half the work (multiply-adds) of the smallest problem it rests on:
    oneDNN's fixed costs make it 2-20x slower than highway on tiny problems;
  * a rule is kept when onednn beats highway by >= MARGIN (1.15x) in geomean over the shapes it
    covers and loses on none of them by more than 5 %, or steadily: >= 1.08x over 6 shapes or
    more and slower on none (2026-12-08, on the Xeon: the factorized 1x7 / 7x1 forward layers,
    1.02-1.22x on all 24 measurements, had stayed on highway at 0.88 of the faster backend); the rule covering the most gain wins
    (fewer conditions on ties), its shapes are removed, and the search repeats.

Noise: a benchmark whose repetitions vary by more than --max-cv is left out, and a thread count
whose median benchmark varies by more than 0.25 is not fitted at all (on a loaded 2-core machine,
2-thread calls stall for whole scheduler slices). Several files measuring the same benchmark are
merged (median of their medians). Two thresholds per rule over one, on the Zen 4
(2026-12-07): fitted on one pair of runs and scored on a second, independent 2-thread run of every
plan op, auto/best by choice 0.974 against 0.947 (always-highway 0.926; backward weights 0.907 ->
0.96); leave-one-set-out cross-validation (--cross-validate) 0.950 against 0.945; on 22 layers of
architectures in no set (AlexNet, GoogLeNet, DenseNet, SqueezeNet, Inception-v3, RegNetX, ...;
forward and backward, 2 threads) 0.936 against 0.922. A margin of 1.10 instead of 1.15 scored the
same on the second run (0.976) and worse on those layers (0.928): its extra rules rested on
2-thread noise and sent DenseNet's 3x3 128 -> 32, 1.7x faster on highway, to oneDNN. On the Zen
5's 1-thread data one threshold had held out marginally better (0.960 vs 0.957). Stride classes
(later the same day, fitted with the "strided" set measured): on the 22 layers 0.954 against 0.950
without them and 0.943 for the table before that set (forward 0.957 / 0.935 / 0.969, backward
data 0.964 / 0.963 / 0.913); without them a rule for small strided 3x3 layers (on channels and
work) sent GoogLeNet's stride-1 3x3 96 -> 208, 1.6x faster on highway (Winograd), to oneDNN.
With 2x2 apart from 3x3: 0.960 (a strided 3x3 backward-data rule had sent UNet's 2x2/2
up-convolutions, 1.2-2.1x faster on highway, to oneDNN; no set measures 2x2 backward data).

The raw JSON goes under --out-dir (default out/, not committed); --json reuses earlier runs.

  python3 tools/make_auto_table.py                         # measure (~5-15 min) and write
  python3 tools/make_auto_table.py --json out/auto_raw_t1.json out/auto_raw_t2.json
  python3 tools/make_auto_table.py --check out/check_t1.json   # score a run with auto in it
"""

import argparse
import datetime
import glob
import itertools
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys

TOOLS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(TOOLS_DIR)
OUTPUT = os.path.join(REPO_DIR, "api", "src", "auto_rules.cpp")

PLAN_OPS = ["conv2d_fwd", "conv2d_bwd_data", "conv2d_bwd_weights", "pool2d_fwd_max",
            "pool2d_fwd_avg", "pool2d_bwd_max", "pool2d_bwd_avg"]
# The same work as one-shot calls (convkit_bench's "_oneshot" ops): fitted apart, since each
# backend's per-call set-up (oneDNN's primitive, highway's weight packing) changes the winner.
ONESHOT = "_oneshot"
OPS = PLAN_OPS + [op + ONESHOT for op in PLAN_OPS]
# convkit_bench's op names (without "_oneshot") → the table's AutoOp.
AUTO_OPS = {"conv2d_fwd": "kConvFwd", "conv2d_bwd_data": "kConvBwdData",
            "conv2d_bwd_weights": "kConvBwdWeights", "pool2d_fwd_max": "kPoolFwdMax",
            "pool2d_fwd_avg": "kPoolFwdAvg", "pool2d_bwd_max": "kPoolBwdMax",
            "pool2d_bwd_avg": "kPoolBwdAvg"}
MARGIN = 1.15       # a rule's geomean advantage for onednn
MAX_TYPICAL_CV = 0.25  # a thread count whose median benchmark varies more is not fitted
MAX_DEPTH = 2      # conditions a rule may add to its class
MIN_SHAPES = 2     # shapes a narrowed rule must rest on
WORST = 1 / 1.05    # no covered shape may be slower on onednn than this
# Or a smaller margin that every one of many shapes shows: a class where onednn wins by 8 % on at
# least 6 shapes and loses on none is no noise (the Xeon's factorized 1x7 / 7x1 forward layers:
# 1.02-1.22x on all 24 measurements).
STEADY_MARGIN, STEADY_SHAPES = 1.08, 6
NUMERIC = ["threads", "stride", "kernel_min", "ic", "oc", "spatial", "batch", "work"]
KERNEL_CLASSES = [(1, 1), (2, 2), (3, 3), (4, 5), (6, None)]
STRIDE_CLASSES = [(1, 1), (2, None)]


def find_bench():
    for candidate in [os.path.join(REPO_DIR, "build", "release", "bench", "convkit_bench")] + \
            glob.glob(os.path.join(REPO_DIR, "build*", "**", "convkit_bench"), recursive=True):
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    sys.exit("make_auto_table: convkit_bench not found; build it (cmake --build --preset release "
             "--target convkit_bench) or pass --bench")


def run_bench(bench, threads, args):
    out = os.path.join(args.out_dir, f"auto_raw_t{threads}.json")
    cmd = [bench, "--ops=" + ",".join(OPS), "--backends=highway,onednn", f"--threads={threads}",
           "--real_time", f"--benchmark_min_time={args.min_time}",
           f"--benchmark_repetitions={args.repetitions}",
           "--benchmark_enable_random_interleaving=true", f"--benchmark_out={out}",
           "--benchmark_out_format=json"]
    print("running:", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return out


# ------------------------------------------------------------------------------------------------
# Reading measurements.

def load_shapes(bench):
    """(set, name, batch) → shape JSON, from convkit_bench --list_shapes."""
    text = subprocess.run([bench, "--list_shapes"], check=True, capture_output=True,
                          text=True).stdout
    shapes = {}
    for line in text.splitlines():
        s = json.loads(line)
        shapes[(s["set"], s["name"], s["batch"])] = s
    return shapes


NAME = re.compile(r"^(?P<op>[^/]+)/(?P<backend>[^/]+)/(?P<set>[^/]+)/(?P<shape>[^/]+)/N(?P<n>\d+)")


def load_medians(paths, max_cv=None, statistic="median", drop_noisy_threads=True):
    """(op, backend, set, shape, batch, threads) → median real time (s); plus the contexts.
    With max_cv, a benchmark whose repetitions vary more than that (coefficient of variation:
    stddev / mean) is left out: on a loaded machine 2-thread runs can be wrecked by descheduled
    OpenMP threads, and a median of wrecked runs is no measurement. statistic "min" takes the
    fastest repetition instead of the median: load only ever adds time."""
    runs, contexts, cvs, reps = {}, [], {}, {}
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        contexts.append(data["context"])
        threads = int(data["context"]["convkit_threads"])
        for b in data["benchmarks"]:
            m = NAME.match(b["name"])
            if b.get("error_occurred") or not m:
                continue
            key = (m["op"], m["backend"], m["set"], m["shape"], int(m["n"]), threads)
            if b.get("aggregate_name") == "cv":
                cvs[key] = max(cvs.get(key, 0.0), b["real_time"]) if key not in cvs else \
                    min(cvs[key], b["real_time"])  # several runs: the steadier one's
            scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b["time_unit"]]
            if b.get("run_type") == "iteration":
                reps.setdefault(key, []).append(b["real_time"] * scale)
            if b.get("aggregate_name") == "median":
                runs.setdefault(key, []).append(b["real_time"] * scale)
    # Several runs of one benchmark (files measured at different times): the median of their
    # medians (for two, their mean). Other backends' benchmarks in a file are ignored by the fit.
    medians = {k: statistics.median(v) for k, v in runs.items()}
    if statistic == "min":
        medians = {k: min(v) for k, v in reps.items()}
    notes = []
    for threads in sorted({k[5] for k in medians}):
        spread = sorted(cv for k, cv in cvs.items() if k[5] == threads)
        typical = spread[len(spread) // 2] if spread else 0.0
        if typical > MAX_TYPICAL_CV and drop_noisy_threads:
            notes.append(f"{threads} thread(s) left out: median cv {typical:.2f} over "
                         f"{len(spread)} benchmarks (> {MAX_TYPICAL_CV}), too noisy to fit")
            medians = {k: v for k, v in medians.items() if k[5] != threads}
        else:
            notes.append(f"{threads} thread(s): median cv {typical:.2f}")
    for note in notes:
        print(note, file=sys.stderr)
    if max_cv is not None:
        noisy = [k for k in medians if cvs.get(k, 0.0) > max_cv]
        for threads in sorted({k[5] for k in medians}):
            total = sum(k[5] == threads for k in medians)
            dropped = sum(k[5] == threads for k in noisy)
            print(f"{threads} thread(s): {dropped} of {total} benchmarks vary by more than "
                  f"cv {max_cv} and are left out", file=sys.stderr)
        for k in noisy:
            del medians[k]
    return medians, contexts, notes


def features(op, shape, threads):
    call = "kOneShot" if op.endswith(ONESHOT) else "kPlan"
    op = op.removesuffix(ONESHOT)
    if shape["kind"] == "conv":
        x, w, y, g = shape["x"], shape["w"], shape["y"], shape["groups"]
        groups = "kDense" if g == 1 else ("kDepthwise" if g == x[3] == w[3] else "kGrouped")
        kernel, kernel_min, ic, oc = max(w[0], w[1]), min(w[0], w[1]), x[3], w[3]
        work = x[0] * y[1] * y[2] * oc * w[0] * w[1] * w[2]
    else:
        x, y = shape["x"], shape["y"]
        groups = "kDense"
        window = [x[1], x[2]] if shape["global"] else shape["window"]
        kernel, kernel_min = max(window), min(window)
        ic = oc = x[3]
        work = x[0] * y[1] * y[2] * ic * window[0] * window[1]
    return {"op": AUTO_OPS[op], "kernel": kernel, "kernel_min": kernel_min, "groups": groups,
            "ic": ic, "oc": oc,
            "spatial": y[1] * y[2], "batch": x[0], "stride": max(shape["stride"]),
            "threads": threads, "work": work, "call": call}


def points(medians, shapes):
    """One point per (op, shape, threads) measured on both backends: features and the ratio
    highway time / onednn time (> 1: onednn is faster)."""
    pts = []
    for (op, backend, set_, name, n, threads), t_hwy in sorted(medians.items()):
        if backend != "highway":
            continue
        t_dnn = medians.get((op, "onednn", set_, name, n, threads))
        if t_dnn is None or (set_, name, n) not in shapes:
            continue
        f = features(op, shapes[(set_, name, n)], threads)
        f.update(ratio=t_hwy / t_dnn, label=f"{op} {set_}/{name}/N{n} t{threads}", set=set_,
                 shape=f"{set_}/{name}/N{n}")
        pts.append(f)
    return pts


# ------------------------------------------------------------------------------------------------
# Fitting.

def in_range(v, lo_hi):
    lo, hi = lo_hi
    return v >= lo and (hi is None or v <= hi)


def class_of(v, classes):
    """The (lo, hi) of KERNEL_CLASSES or STRIDE_CLASSES that holds v."""
    return next(c for c in classes if in_range(v, c))


def range_name(prefix, lo_hi):
    """"k3", "k4-5", "k>=6"; "s1", "s>=2"."""
    lo, hi = lo_hi
    return f"{prefix}{lo}" if lo == hi else (f"{prefix}{lo}-{hi}" if hi else f"{prefix}>={lo}")


def intersect(a, b):
    """Two (lo, hi) bounds, None for open sides, as one."""
    lo = [x for x in (a[0], b[0]) if x is not None]
    hi = [x for x in (a[1], b[1]) if x is not None]
    return (max(lo) if lo else None, min(hi) if hi else None)


def geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def thresholds(values):
    """Cut points between consecutive distinct values, at their geometric midpoint."""
    vs = sorted(set(values))
    return [int(math.sqrt(a * b)) for a, b in zip(vs, vs[1:])]


def conditions(pts):
    """Candidate one-sided conditions (feature, lo, hi) on the class's points."""
    conds = []
    for feat in NUMERIC:
        for t in thresholds([p[feat] for p in pts]):
            conds.append((feat, None, t))      # feat <= t
            conds.append((feat, t + 1, None))  # feat > t
    return conds


def holds(cond, p):
    feat, lo, hi = cond
    return (lo is None or p[feat] >= lo) and (hi is None or p[feat] <= hi)


def best_rule(pts):
    """The narrowing of a class (<= MAX_DEPTH conditions) with the most gain that qualifies, or
    None."""
    best = None
    conds = conditions(pts)
    for depth in range(MAX_DEPTH + 1):
        for combo in itertools.combinations(conds, depth):
            if len({c[0] for c in combo}) < depth:
                continue  # two cuts on one feature: a range; keep rules simple
            covered = [p for p in pts if all(holds(c, p) for c in combo)]
            if not covered or (depth > 0 and len({p["shape"] for p in covered}) < MIN_SHAPES):
                continue  # a narrowed rule must rest on two shapes at least, or it memorises
            ratios = [p["ratio"] for p in covered]
            steady = (len({p["shape"] for p in covered}) >= STEADY_SHAPES and min(ratios) >= 1.0
                      and geomean(ratios) >= STEADY_MARGIN)
            if not steady and (geomean(ratios) < MARGIN or min(ratios) < WORST):
                continue
            gain = sum(math.log(r) for r in ratios) - 0.01 * depth
            if best is None or gain > best[0] + 1e-9:
                best = (gain, combo, covered)
    return best


def with_work_floor(combo, covered):
    """Adds work >= half the smallest covered problem's, unless the rule bounds work already.
    Below that, fixed costs rule, and oneDNN's are the larger (2-20x slower than highway on the
    seed-sized problems): a rule must not reach down to problems smaller than those it rests on."""
    if any(c[0] == "work" and c[1] is not None for c in combo):
        return combo
    return combo + (("work", min(p["work"] for p in covered) // 2, None),)


def fit(pts):
    classes = {}
    for p in pts:
        key = (p["op"], class_of(p["kernel"], KERNEL_CLASSES), p["groups"], p["call"],
               class_of(p["stride"], STRIDE_CLASSES))
        classes.setdefault(key, []).append(p)
    rules = []
    for key in sorted(classes, key=str):
        remaining = classes[key]
        while True:
            found = best_rule(remaining)
            if found is None:
                break
            _, combo, covered = found
            combo = with_work_floor(combo, covered)
            rules.append({"class": key, "conds": combo, "covered": covered})
            remaining = [p for p in remaining if p not in covered]
    return rules


def matches(rule, p):
    op, kernel, groups, call, stride = rule["class"]
    return (p["op"] == op and p["call"] == call and in_range(p["kernel"], kernel) and
            p["groups"] == groups and in_range(p["stride"], stride) and
            all(holds(c, p) for c in rule["conds"]))


# ------------------------------------------------------------------------------------------------
# Writing the table.

def describe(rule):
    op, kernel, groups, call, stride = rule["class"]
    parts = [op[1:], range_name("k", kernel), range_name("s", stride), groups[1:].lower()]
    parts += ["one-shot"] if call == "kOneShot" else []
    for feat, lo, hi in rule["conds"]:
        parts.append(f"{feat}<={hi}" if hi is not None else f"{feat}>={lo}")
    ratios = [p["ratio"] for p in rule["covered"]]
    return (f"{' '.join(parts)}: onednn {geomean(ratios):.2f}x faster in geomean "
            f"(min {min(ratios):.2f}x) over {len(ratios)} measured shapes")


def cpp_rule(rule):
    op, (klo, khi), groups, call, stride = rule["class"]
    fields = [f".op = AutoOp::{op}", f".kernel = {{{klo}, {khi if khi else 'kNoLimit'}}}",
              f".groups = GroupsClass::{groups}"]
    # A feature may carry two conditions (work <= hi from the fit, work >= lo from the floor;
    # stride's class and a stride condition): one range holds both.
    ranges = {"stride": stride}
    for feat, lo, hi in rule["conds"]:
        ranges[feat] = intersect(ranges.get(feat, (None, None)), (lo, hi))
    for feat in ["kernel_min", "ic", "oc", "spatial", "batch", "stride", "threads", "work"]:
        if feat in ranges:
            lo, hi = ranges[feat]
            fields.append(f".{feat} = {{{lo if lo is not None else 0}, "
                          f"{hi if hi is not None else 'kNoLimit'}}}")
    if call == "kOneShot":
        fields.append(".call = CallKind::kOneShot")
    fields.append('.backend = "onednn"')
    fields.append(f'.why = "{describe(rule)}"')
    return "    {" + ",\n     ".join(fields) + "},\n"


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        model = re.search(r"model name\s*:\s*(.*)", info).group(1).strip()
        family = int(re.search(r"cpu family\s*:\s*(\d+)", info).group(1))
        vendor = re.search(r"vendor_id\s*:\s*(\S+)", info).group(1)
        cpu_model = int(re.search(r"model\s*:\s*(\d+)", info).group(1))
        # Family 25 is Zen 3 and Zen 4: Zen 4 at models 0x10-0x1f, 0x60-0x7f and 0xa0-0xaf.
        zen4 = cpu_model >> 4 in (0x1, 0x6, 0x7, 0xa)
        zen = {23: "Zen / Zen 2", 25: "Zen 4" if zen4 else "Zen 3", 26: "Zen 5"}.get(family)
        core = f", {zen}" if vendor == "AuthenticAMD" and zen else ""
        return f"{model} (family {family}{core})"
    except (OSError, AttributeError):
        return "unknown CPU"


def cpu_vendor():
    """cpuid's vendor string ("AuthenticAMD", "GenuineIntel"): the table a run writes."""
    try:
        with open("/proc/cpuinfo") as f:
            return re.search(r"vendor_id\s*:\s*(\w+)", f.read()).group(1)
    except (OSError, AttributeError):
        return "unknown"


# One vendor's table in the generated file, between these markers: a run rewrites its own
# vendor's and keeps the others as they are.
SECTION = re.compile(r"^// ---- table (\w+): begin\n.*?^// ---- table \1: end\n", re.M | re.S)


def table_section(vendor, rules, contexts, json_paths, notes):
    loads = "; ".join(f"{c['convkit_threads']} thread(s): load {c['load_avg'][0]:.1f}"
                      for c in contexts)
    noise = "".join(f"\n// {n}." for n in notes)
    body = "".join(cpp_rule(r) for r in rules)
    if not rules:
        body = "    {.op = AutoOp::kConvFwd, .kernel = {0, -1}, .backend = \"highway\", " \
               ".why = \"never matches: no rule qualified\"},\n"
    return f"""// ---- table {vendor}: begin
// Measured on {cpu_name()}, {contexts[0]['num_cpus']} cores, {contexts[0]['date'][:10]}
// (load averages at the start: {loads}) from
// {', '.join(os.path.relpath(p, REPO_DIR) for p in json_paths)}.{noise}
// Rules that do not bound threads apply to every thread count.
constexpr AutoRule kRules{vendor}[] = {{
{body}}};
constexpr std::string_view kSource{vendor} =
    "tools/make_auto_table.py on {cpu_name()}, {contexts[0]['date'][:10]}";
// ---- table {vendor}: end
"""


def write_table(rules, contexts, json_paths, notes, path):
    """Writes this machine's vendor's table into `path`, keeping the other vendors' tables."""
    vendor = cpu_vendor()
    sections = {}
    if os.path.exists(path):
        with open(path) as f:
            sections = {m.group(1): m.group(0) for m in SECTION.finditer(f.read())}
    sections[vendor] = table_section(vendor, rules, contexts, json_paths, notes)
    vendors = sorted(sections)
    header = """// auto's decision tables: GENERATED by tools/make_auto_table.py, do not edit. Regenerate with
//   python3 tools/make_auto_table.py
// (it runs convkit_bench over every set, highway and onednn, 1 and 2 threads, and fits these rules;
// see the script for how). A rule sends a problem to onednn first; no rule means highway. One table
// per CPU vendor measured: a run rewrites its machine's vendor's table and keeps the others; a CPU
// of another vendor takes the first (auto_table_for).
#include <string_view>

#include "api/src/auto_table.hpp"

namespace convkit::internal {

namespace {

"""
    tables = "".join(f'    {{"{v}", kRules{v}, kSource{v}}},\n' for v in vendors)
    footer = f"""
constexpr AutoTable kTables[] = {{
{tables}}};

}}  // namespace

std::span<const AutoTable> auto_tables() {{ return kTables; }}

}}  // namespace convkit::internal
"""
    with open(path, "w") as f:
        f.write(header + "".join(sections[v] for v in vendors) + footer)
    if shutil.which("clang-format"):  # the tree's style (tools/check_format.sh checks it), also
        # for an --output outside the tree, where clang-format would not find .clang-format
        style = "file:" + os.path.join(REPO_DIR, ".clang-format")
        subprocess.run(["clang-format", "-i", "--style=" + style, path], check=True)


def cross_validate(pts):
    """Leave one shape set out: fit on the others, predict the set left out (held-out shapes)."""
    print("leave-one-set-out (fit on the other sets, auto/best on the set left out):")
    for held in sorted({p["set"] for p in pts}):
        train = [p for p in pts if p["set"] != held]
        test = [p for p in pts if p["set"] == held]
        scores = auto_vs_best(fit(train), test)
        print(f"  {held:10s} geomean {geomean([s[0] for s in scores]):.3f}, "
              f"min {scores[0][0]:.3f} ({scores[0][1]}), below 0.95: "
              f"{sum(s[0] < 0.95 for s in scores)} of {len(scores)}")


def auto_vs_best(rules, pts):
    """(best time / auto's time, label, choice, ratio) per point, worst first."""
    scores = []
    for p in pts:
        onednn = any(matches(r, p) for r in rules)
        r = p["ratio"]
        # The best time over auto's: highway costs 1/r when onednn is faster (r > 1), onednn r.
        auto_vs_best = (1 / r if r > 1 else 1.0) if not onednn else (r if r < 1 else 1.0)
        scores.append((auto_vs_best, p["label"], "onednn" if onednn else "highway", r))
    return sorted(scores)


def report(rules, pts):
    """What the table predicts on the points it was fitted on: auto's ratio to the best."""
    print(f"{len(rules)} rules:")
    for r in rules:
        print("  " + describe(r))
    worst = auto_vs_best(rules, pts)
    print(f"fitted on {len(pts)} points; predicted auto/best geomean "
          f"{geomean([w[0] for w in worst]):.3f}; below 0.95:")
    for w in worst:
        if w[0] < 0.95:
            print(f"  {w[0]:.3f}  {w[1]}: auto takes {w[2]}, highway/onednn time {w[3]:.2f}")


def load_labels(paths):
    """(op, backend, set, shape, batch, threads) → the benchmark's label (its implementation)."""
    labels = {}
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        threads = int(data["context"]["convkit_threads"])
        for b in data["benchmarks"]:
            m = NAME.match(b["name"])
            if m and b.get("label"):
                labels[(m["op"], m["backend"], m["set"], m["shape"], int(m["n"]), threads)] = \
                    b["label"]
    return labels


def summarize(title, scores):
    """Prints geomean, counts below 0.95 / 0.97, per op and thread count, and the worst."""
    if not scores:
        return
    scores.sort()
    print(f"{title} over {len(scores)} (op, shape, threads): geomean "
          f"{geomean([s[0] for s in scores]):.3f}, min {scores[0][0]:.3f}, below 0.95: "
          f"{sum(s[0] < 0.95 for s in scores)}, below 0.97: {sum(s[0] < 0.97 for s in scores)}")
    by_op = {}
    for score, label in scores:
        by_op.setdefault(label.split()[0] + " " + label.split()[-1], []).append(score)
    for key in sorted(by_op):
        v = by_op[key]
        print(f"  {key:28s} geomean {geomean(v):.3f}  min {min(v):.3f}  "
              f"below 0.95: {sum(x < 0.95 for x in v)} of {len(v)}")
    print("  worst: " + "; ".join(f"{s:.2f} {label}" for s, label in scores[:6]))


def check(paths, bench, statistic="median"):
    """auto and auto_measure against the faster of highway and onednn, per shape, from runs of
    convkit_bench --backends=highway,onednn,auto,auto_measure (one run per thread count). Two
    scores each: "timed" divides by auto's own time; "by choice" by the time of the backend auto
    chose (its label), measured in the same run, which leaves auto's own timing noise out. The
    spread of chosen-backend time / auto's time (the same code twice) is the run's noise floor."""
    medians, contexts, _ = load_medians(paths, statistic=statistic, drop_noisy_threads=False)
    labels = load_labels(paths)
    shapes = load_shapes(bench)
    for c in contexts:
        print(f"run: {c['convkit_threads']} thread(s), load {c['load_avg'][0]:.1f} at start, "
              f"{c['date']}")
    for auto in ("auto", "auto_measure"):
        timed, by_choice, same_code = [], [], []
        for (op, backend, set_, name, n, threads), t_auto in medians.items():
            if backend != auto or (set_, name, n) not in shapes:
                continue
            t = {b: medians.get((op, b, set_, name, n, threads)) for b in ("highway", "onednn")}
            present = [v for v in t.values() if v]
            if not present:
                continue
            label = f"{op} {set_}/{name}/N{n} t{threads}"
            timed.append((min(present) / t_auto, label))
            chosen = labels.get((op, backend, set_, name, n, threads), "").split(":")[0]
            if " + " in labels.get((op, backend, set_, name, n, threads), ""):
                continue  # two passes on two backends: no single backend's time to compare
            if t.get(chosen):
                by_choice.append((min(present) / t[chosen], label))
                same_code.append(t[chosen] / t_auto)
        summarize(f"{auto} / best, timed", timed)
        summarize(f"{auto} / best, by choice", by_choice)
        if same_code:
            same_code.sort()
            q = lambda f: same_code[min(len(same_code) - 1, int(f * len(same_code)))]
            print(f"  noise floor (chosen backend's time / {auto}'s, the same code): median "
                  f"{q(0.5):.3f}, 10-90 % {q(0.1):.3f}-{q(0.9):.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", help="convkit_bench binary (default: build/release/bench/...)")
    ap.add_argument("--json", nargs="+", help="reuse these convkit_bench JSON files")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repetitions", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=0.05)
    ap.add_argument("--max-cv", type=float, default=0.3,
                    help="leave out benchmarks whose repetitions vary more (default 0.3)")
    ap.add_argument("--statistic", choices=["median", "min"], default="median",
                    help="per benchmark: the median of its repetitions (default) or the fastest")
    ap.add_argument("--out-dir", default=os.path.join(REPO_DIR, "out"))
    ap.add_argument("--output", default=OUTPUT, help="the C++ file to write")
    ap.add_argument("--check", nargs="+", metavar="JSON",
                    help="instead: score auto and auto_measure against the best backend in runs "
                         "of convkit_bench --backends=highway,onednn,auto,auto_measure")
    ap.add_argument("--cross-validate", action="store_true",
                    help="also fit without each set in turn and score the set left out")
    args = ap.parse_args()
    bench = args.bench or find_bench()
    if args.check:
        check(args.check, bench, args.statistic)
        return
    os.makedirs(args.out_dir, exist_ok=True)
    paths = args.json or [run_bench(bench, int(t), args) for t in args.threads.split(",")]
    medians, contexts, notes = load_medians(paths, args.max_cv, args.statistic)
    pts = points(medians, load_shapes(bench))
    rules = fit(pts)
    report(rules, pts)
    if args.cross_validate:
        cross_validate(pts)
    write_table(rules, contexts, paths, notes, args.output)
    print("wrote", os.path.relpath(args.output, REPO_DIR))


if __name__ == "__main__":
    main()
