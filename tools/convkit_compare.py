#!/usr/bin/env python3
"""convkit_compare: run convkit_bench and compare the backends (DESIGN §9).

Runs bench/convkit_bench (Google Benchmark) over the chosen ops, backends and shape sets, showing
each result as it lands, then prints one Markdown table per op: each backend's GFLOP/s (convolution)
or GB/s (pooling) with its share of this machine's peak, and the ratios to oneDNN and to the
reference backend. The peaks (fp32 FMA throughput, STREAM triad) are measured first, in the same
run and with the same threads, by bench/convkit_peak; --peak-gflops / --peak-gbps override them.
When PyTorch can be imported (Debian's python3-torch) it adds a pytorch column for the forward
convolution and pooling (tools/torch_bench.py); when not, the column says so.

The modern peers (DESIGN §9, issue 16), each optional (installed by tools/setup.sh --peers; an
absent one is a note, never a failure): XNNPACK (convkit_bench's xnnpack column, built when
libxnnpack-dev is found), ONNX Runtime and OpenVINO (tools/peers_bench.py, one-node ONNX graphs,
NCHW) on the forward convolution. Each table then has a "best peer" column, the fastest of oneDNN
(convkit's onednn backend and oneDNN called directly), XNNPACK, ONNX Runtime and OpenVINO on that
shape, and highway's ratio to it.

--batch takes one batch for every op (--batch 8) or batches per op prefix (--batch
pool2d=32,conv2d_bwd=8: pooling at 32, backward convolution at 8, the rest at each shape's default).
--rounds R measures everything R times, one round after another, and keeps each benchmark's median
over the rounds: on a shared machine, load that comes and goes then hits every column alike.

Writes under --out (default out/): convkit_bench.json (the raw Google Benchmark JSON, all runs
merged), torch.json, shapes.jsonl, results.json (the tables), compare.md (what was printed) and
one PNG chart per op (bars per shape per backend). --update-readme rewrites two marked blocks: the
summary between <!-- perf-summary:begin --> and <!-- perf-summary:end --> in README.md (one row of
geometric means per op and set) and the tables between <!-- perf-table:begin --> and
<!-- perf-table:end --> in docs/PERFORMANCE.md beside it (the summary and every shape).

--from-results redraws all of that from an earlier run's results.json; --from-bench-json builds it
from convkit_bench's own JSON files (an earlier run's convkit_bench.json, or the raw runs of
tools/make_auto_table.py), each file one round: the peaks then come from --peak-gflops and
--peak-gbps, the commit from --commit, the machine line from the machine running this command.

  python3 tools/convkit_compare.py                        # the default comparison, ~10 min
  python3 tools/convkit_compare.py --sets resnet50 --ops conv2d_fwd --threads 1
  python3 tools/convkit_compare.py --from-results out/results.json --update-readme
  python3 tools/convkit_compare.py --from-bench-json out/auto_raw_t2.json --peak-gflops 541
  python3 tools/convkit_compare.py --sets grouped,stems --ops conv2d_fwd --rounds 3
"""

import argparse
import datetime
import glob
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time

TOOLS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(TOOLS_DIR)
sys.path.insert(0, TOOLS_DIR)

# The ops and sets themselves are convkit_bench's (bench/convkit_bench.cpp, bench/shape_sets.hpp);
# it rejects unknown names.
DEFAULT_OPS = ["conv2d_fwd", "conv2d_bwd_data", "conv2d_bwd_weights", "pool2d_fwd_max",
               "pool2d_fwd_avg", "pool2d_bwd_max", "pool2d_bwd_avg"]
TORCH_OPS = ["conv2d_fwd", "pool2d_fwd_max", "pool2d_fwd_avg"]
# Column order; backends not listed here follow, in the order they appear.
BACKEND_ORDER = ["highway", "onednn", "onednn_direct", "auto", "auto_measure", "xnnpack",
                 "onnxruntime", "openvino", "pytorch", "reference"]
# auto's names in convkit_bench: auto (the decision table) and auto_measure (CONVKIT_AUTO=measure).
AUTO_BACKENDS = ("auto", "auto_measure")
# The peers "best peer" is the fastest of (issue 16); ONNX Runtime and OpenVINO run in
# tools/peers_bench.py, XNNPACK and oneDNN called directly inside convkit_bench.
PEERS = ["onednn", "onednn_direct", "xnnpack", "onnxruntime", "openvino"]
SCRIPT_PEERS = ["onnxruntime", "openvino"]
PEER_OPS = ["conv2d_fwd"]
# Who the best peer is compared with.
CHALLENGERS = ["highway", "auto"]
# The blocks --update-readme rewrites: (file relative to the README's folder, begin, end).
SUMMARY_BLOCK = ("README.md", "<!-- perf-summary:begin -->", "<!-- perf-summary:end -->")
TABLES_BLOCK = (os.path.join("docs", "PERFORMANCE.md"), "<!-- perf-table:begin -->",
                "<!-- perf-table:end -->")


# ------------------------------------------------------------------------------------------------
# Running convkit_bench.

def find_bench(path):
    if path:
        return path
    candidates = [os.path.join(REPO_DIR, p, "bench", "convkit_bench")
                  for p in ("build/release", "build", "build-bench")]
    candidates += sorted(glob.glob(os.path.join(REPO_DIR, "build*", "**", "convkit_bench"),
                                   recursive=True), key=os.path.getmtime, reverse=True)
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    sys.exit("convkit_compare: no convkit_bench found under %s/build*; build it "
             "(cmake --preset release && cmake --build --preset release) or pass --bench"
             % REPO_DIR)


def measure_peaks(bench, args, raw_dir):
    """{"gflops", "gbps", "how"}: the peaks the tables divide by, at args.threads threads."""
    peaks = {"gflops": None, "gbps": None, "how": "given"}
    if args.peak_gflops:
        peaks["gflops"] = args.peak_gflops * args.threads / args.peak_threads
    if args.peak_gbps:
        peaks["gbps"] = args.peak_gbps
    tool = os.path.join(os.path.dirname(bench), "convkit_peak")
    if peaks["gflops"] and peaks["gbps"]:
        return peaks
    if not (os.path.isfile(tool) and os.access(tool, os.X_OK)):
        print("convkit_peak: not built next to %s; the tables show no %% of peak" % bench,
              flush=True)
        return peaks
    json_path = os.path.join(raw_dir, "peak.json")
    run_quietly([tool, "--threads=%d" % args.threads, "--benchmark_repetitions=3",
                 "--benchmark_report_aggregates_only=true", "--benchmark_out=" + json_path,
                 "--benchmark_out_format=json"])
    with open(json_path) as f:
        medians = [r for r in json.load(f)["benchmarks"] if r.get("aggregate_name") == "median"]
    for r in medians:
        if peaks["gflops"] is None and "GFLOPS" in r:
            peaks["gflops"] = r["GFLOPS"]
        if peaks["gbps"] is None and "GBps" in r:
            peaks["gbps"] = r["GBps"]
    peaks["how"] = "measured in this run by convkit_peak, median of 3"
    print("convkit_peak (%d threads): fp32 FMA %.0f GFLOP/s, STREAM triad %.1f GB/s"
          % (args.threads, peaks["gflops"] or 0, peaks["gbps"] or 0), flush=True)
    return peaks


def parse_batch(text):
    """--batch: "8" (every op) or "pool2d=32,conv2d_bwd=8" (per op prefix) -> {prefix: batch};
    the prefix "" is every op."""
    spec = {}
    for item in (i for i in text.split(",") if i):
        prefix, _, value = item.rpartition("=")
        if not value.isdigit() or int(value) < 1:
            raise argparse.ArgumentTypeError("--batch: '%s' is not N or OP_PREFIX=N" % item)
        spec[prefix] = int(value)
    return spec


def batch_for(args, op):
    """The batch op runs at: the longest matching prefix of --batch; 0 (each shape's default)."""
    best = max((p for p in args.batch if op.startswith(p)), key=len, default=None)
    return args.batch[best] if best is not None else 0


def bench_flags(args, batch):
    flags = ["--threads=%d" % args.threads, "--reference=" + args.reference]
    if args.sets:
        flags.append("--sets=" + ",".join(args.sets))
    convkit_backends = [b for b in (args.backends or []) if b not in ["pytorch"] + SCRIPT_PEERS]
    if convkit_backends:
        flags.append("--backends=" + ",".join(convkit_backends))
    if batch:
        flags.append("--batch=%d" % batch)
    if args.real_time:
        flags.append("--real_time")
    return flags


def run_quietly(cmd):
    """stdout of cmd; on failure, its stderr and exit."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit("convkit_compare: %s failed:\n%s" % (" ".join(cmd), proc.stderr.strip()))
    return proc.stdout


def list_tests(bench, flags, op):
    out = run_quietly([bench] + flags + ["--ops=" + op, "--benchmark_list_tests"])
    return [line.strip() for line in out.splitlines() if line.strip()]


def base_name(name):
    """The benchmark's name without Google Benchmark's decorations."""
    name = re.sub(r"_(mean|median|stddev|cv)$", "", name)
    return re.sub(r"/(real_time|manual_time|process_time)$", "", name)


SI = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "m": 1e-3, "u": 1e-6, "n": 1e-9}
TIME_US = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}
CONSOLE_RUN = re.compile(
    r"^(\S+)\s+([\d.e+-]+) (ns|us|ms|s)\s+([\d.e+-]+) (ns|us|ms|s)\s+(\d+)(.*)$")
CONSOLE_ERROR = re.compile(r"^(\S+)\s+ERROR OCCURRED: '(.*)'\s*$")


def parse_console_line(line):
    """A record from a console line: the fallback when a crash lost the JSON file."""
    m = CONSOLE_ERROR.match(line)
    if m:
        return {"name": m.group(1), "run_name": m.group(1), "run_type": "iteration",
                "error_occurred": True, "error_message": m.group(2)}
    m = CONSOLE_RUN.match(line)
    if not m:
        return None
    record = {"name": m.group(1), "run_name": m.group(1), "run_type": "iteration",
              "real_time": float(m.group(2)) * TIME_US[m.group(3)], "time_unit": "us"}
    rest = m.group(7).split()
    labels = []
    for token in rest:
        c = re.match(r"^(\w+)=([\d.e+-]+)([kMGTmun]?)(/s)?$", token)
        if c:
            record[c.group(1)] = float(c.group(2)) * SI[c.group(3)]
        else:
            labels.append(token)
    record["label"] = " ".join(labels)
    return record


def load_json_tolerant(path):
    """The benchmarks of a Google Benchmark JSON file, also when the run died half-way."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return {}, []
    try:
        data = json.loads(text)
        return data.get("context", {}), data.get("benchmarks", [])
    except ValueError:
        pass
    records, decoder = [], json.JSONDecoder()
    start = text.find('"benchmarks"')
    i = text.find("[", start) + 1 if start >= 0 else -1
    while 0 < i < len(text):
        while i < len(text) and text[i] in " \r\n\t,":
            i += 1
        try:
            record, i = decoder.raw_decode(text, i)
            records.append(record)
        except ValueError:
            break
    return {}, records


class Progress:
    def __init__(self, total):
        self.total, self.done, self.start = total, 0, time.time()

    def line(self, text):
        self.done += 1
        elapsed = time.time() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        print("[%3d/%d %s, ~%s left] %s" % (self.done, self.total, clock(elapsed), clock(eta),
                                            text), flush=True)


def clock(seconds):
    return "%d:%02d" % (seconds // 60, seconds % 60)


def run_op(bench, flags, op, names, args, raw_dir, progress):
    """Runs the benchmarks `names` of one op; returns (context, records). A benchmark that
    crashes the process is recorded as an error and the run goes on after it."""
    pending, records, context, attempt = list(names), [], {}, 0
    while pending:
        json_path = os.path.join(raw_dir, "%s.%d.json" % (op, attempt))
        cmd = [bench] + flags + ["--ops=" + op, "--benchmark_out=" + json_path,
                                 "--benchmark_out_format=json", "--benchmark_color=false",
                                 "--benchmark_min_time=%g" % args.min_time,
                                 "--benchmark_repetitions=%d" % args.repetitions]
        # No --benchmark_enable_random_interleaving: it re-runs the iteration-count search for
        # every repetition (a 1:26 run took over an hour); --rounds interleaves instead.
        if attempt > 0:
            cmd.append("--benchmark_filter=^(%s)$" % "|".join(re.escape(n) for n in pending))
        stderr_path = os.path.join(raw_dir, "%s.%d.stderr" % (op, attempt))
        seen, console = [], {}
        with open(stderr_path, "w") as stderr:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                    bufsize=1)
            for line in proc.stdout:
                line = line.rstrip("\n")
                if not line or line.startswith("-") or line.startswith("Benchmark "):
                    continue
                first = line.split()[0]
                name = base_name(first)
                if name in pending and name not in seen:
                    seen.append(name)
                    progress.line(line)
                record = parse_console_line(line) if first == name else None  # no aggregates
                if record:
                    console[name] = record
            rc = proc.wait()
        ctx, got = load_json_tolerant(json_path)
        context = context or ctx
        records += got
        in_json = {base_name(r.get("run_name", r["name"])) for r in got}
        records += [r for n, r in console.items() if n not in in_json]
        if rc == 0:
            break
        # The benchmark running when the process died is the first one not reported.
        reported = in_json | set(console)
        remaining = [n for n in pending if n not in reported]
        if not remaining:
            break
        why = "signal %d" % -rc if rc < 0 else "exit code %d" % rc
        with open(stderr_path) as f:
            tail = f.read().strip().splitlines()[-1:]
        message = "crashed (%s)%s" % (why, (": " + tail[0]) if tail else "")
        # An exit code before any benchmark ran is a failure to start: retrying would not help.
        failed = remaining if rc > 0 and not seen else remaining[:1]
        for name in failed:
            records.append({"name": name, "run_name": name, "run_type": "iteration",
                            "error_occurred": True, "error_message": message})
            progress.line("%s  CRASHED: %s" % (name, message))
        pending = remaining[len(failed):]
        attempt += 1
    return context, records


def list_shapes(bench, args, batch):
    flags = []
    if args.sets:
        flags.append("--sets=" + ",".join(args.sets))
    if batch:
        flags.append("--batch=%d" % batch)
    out = run_quietly([bench, "--list_shapes"] + flags)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------------
# PyTorch.

def find_torch_python(args):
    """An interpreter that imports torch: ours, or Debian's (python3-torch installs there)."""
    candidates = [args.torch_python] if args.torch_python else [sys.executable, "/usr/bin/python3"]
    for python in dict.fromkeys(c for c in candidates if c and os.path.exists(c)):
        probe = subprocess.run([python, "-c", "import torch; print(torch.__version__)"],
                               capture_output=True, text=True)
        if probe.returncode == 0:
            return python, probe.stdout.strip()
    return None, None


def run_torch(args, ops, shapes_path, out_dir):
    """Returns (records, what a missing cell says)."""
    python, version = find_torch_python(args)
    if not python:
        print("pytorch: not installed (no interpreter imports torch); its column says so",
              flush=True)
        return [], "not installed"
    out_path = os.path.join(out_dir, "torch.json")
    print("pytorch %s (%s): %s" % (version, python, ", ".join(ops)), flush=True)
    cmd = [python, os.path.join(TOOLS_DIR, "torch_bench.py"), "--shapes", shapes_path,
           "--ops", ",".join(ops), "--threads", str(args.threads), "--min-time",
           str(args.min_time), "--repetitions", str(args.repetitions), "--out", out_path]
    if subprocess.run(cmd).returncode != 0:
        print("pytorch: torch_bench.py failed; its column says so", flush=True)
        return [], "failed"
    with open(out_path) as f:
        return json.load(f)["benchmarks"], "not run"


# ------------------------------------------------------------------------------------------------
# ONNX Runtime and OpenVINO (tools/peers_bench.py).

def run_script_peers(args, shapes, out_dir, suffix, notes):
    """Records of the peers that tools/peers_bench.py times; a peer that is not installed or fails
    adds a note and leaves its column out."""
    conv = [s for s in shapes if s["kind"] == "conv"]
    wanted = [p for p in SCRIPT_PEERS if not args.backends or p in args.backends]
    if not conv or args.no_peers or not wanted:
        return []
    shapes_path = os.path.join(out_dir, "raw", "peer_shapes.jsonl")
    with open(shapes_path, "w") as f:
        f.writelines(json.dumps(s) + "\n" for s in conv)
    records = []
    for peer in wanted:
        out_path = os.path.join(out_dir, "raw", "%s%s.json" % (peer, suffix))
        print("%s: conv2d_fwd on %d shapes" % (peer, len(conv)), flush=True)
        cmd = [sys.executable, os.path.join(TOOLS_DIR, "peers_bench.py"), "--peer", peer,
               "--shapes", shapes_path, "--threads", str(args.threads), "--min-time",
               str(args.min_time), "--repetitions", str(args.repetitions), "--out", out_path]
        rc = subprocess.run(cmd).returncode
        if rc != 0:
            why = "not installed" if rc == 3 else "failed (exit code %d)" % rc
            notes.add("%s: %s; its column is left out (tools/setup.sh --peers installs the "
                      "peers)" % (peer, why))
            continue
        with open(out_path) as f:
            data = json.load(f)
        notes.add("%s: %s" % (peer, data["version"]))
        records += data["benchmarks"]
    return records


def merge_rounds(rounds):
    """One record per benchmark: the round whose figure is the median (the lower one of an even
    count); errors only when every round failed."""
    by_name = {}
    for records in rounds:
        for r in records:
            by_name.setdefault(base_name(r.get("run_name", r["name"])), []).append(r)
    merged = []
    for runs in by_name.values():
        ok = [r for r in runs if not r.get("error_occurred")]
        if not ok:
            merged.append(runs[0])
            continue
        ok.sort(key=lambda r: r.get("GFLOPS", r.get("GBps")) or 0.0)
        merged.append(dict(ok[(len(ok) - 1) // 2], rounds=len(ok)))
    return merged


# ------------------------------------------------------------------------------------------------
# Tables.

def order_backends(names):
    known = [b for b in BACKEND_ORDER if b in names]
    return known + [b for b in names if b not in known]


def cell_from_record(record, cpu_time=False):
    if record.get("error_occurred"):
        return {"error": record.get("error_message", "error")}
    value = record.get("GFLOPS", record.get("GBps"))
    time_us = record.get("real_time", 0.0) * TIME_US.get(record.get("time_unit", "us"), 1.0)
    if cpu_time and value and record.get("cpu_time"):  # same unit as real_time
        value *= record["real_time"] / record["cpu_time"]
        time_us = record["cpu_time"] * TIME_US.get(record.get("time_unit", "us"), 1.0)
    return {"value": value, "time_us": time_us, "label": record.get("label", "")}


def wanted_record(args, record):
    """With repetitions, Google Benchmark's median (torch's and the peers' are medians)."""
    if args.repetitions <= 1 or record.get("error_occurred"):
        return record.get("run_type") != "aggregate"
    return record.get("aggregate_name") == "median"


def build_results(args, shapes, records, torch_records, torch_status, torch_ops, machine,
                  command, peaks, notes=()):
    """The tables as data: results.json, from which the Markdown and the charts are drawn.
    records: one per benchmark (wanted_record, merge_rounds)."""
    cells = {}  # (op, set, shape, batch) -> {backend: cell}
    for record in list(records) + (torch_records or []):
        parts = base_name(record.get("run_name", record["name"])).split("/")
        if len(parts) != 5 or not parts[4].startswith("N"):
            continue
        op, backend, set_name, shape, batch = parts
        cells.setdefault((op, set_name, shape, int(batch[1:])), {})[backend] = \
            cell_from_record(record, args.cpu_time)

    tables = []
    for op in args.ops:
        kind = "conv" if op.startswith("conv") else "pool"
        rows = []
        for s in (s for s in shapes if s["kind"] == kind):
            key = (op, s["set"], s["name"], s["batch"])
            if key in cells:
                rows.append({"set": s["set"], "shape": s["name"], "batch": s["batch"],
                             "cells": dict(cells[key])})
        if not rows:
            continue
        backends = order_backends(list(dict.fromkeys(b for r in rows for b in r["cells"])))
        if op in torch_ops:
            if "pytorch" not in backends:
                backends = order_backends(backends + ["pytorch"])
            for r in rows:
                r["cells"].setdefault("pytorch", {"missing": torch_status})
        tables.append({"op": op, "unit": "GFLOP/s" if kind == "conv" else "GB/s",
                       "peak": peaks["gflops"] if kind == "conv" else peaks["gbps"],
                       "peak_name": "fp32 FMA peak" if kind == "conv" else "STREAM triad",
                       "backends": backends, "rows": rows})
    if args.cpu_time:
        notes = set(notes) | {"rates per second of CPU time (--cpu-time), not wall time"}
    return {"machine": machine, "command": command, "threads": args.threads,
            "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "tables": tables,
            "notes": sorted(notes)}


def fmt(v):
    if v >= 100:
        return "%.0f" % v
    if v >= 10:
        return "%.1f" % v
    if v >= 1:
        return "%.2f" % v
    return "%.3g" % v


def value_text(cell, peak):
    if "value" in cell and cell["value"] is not None:
        pct = ""
        if peak:
            share = 100.0 * cell["value"] / peak
            pct = " (%.0f%%)" % share if share >= 1 else " (<1%)"
        return fmt(cell["value"]) + pct
    if "error" in cell:
        e = cell["error"]
        return "unsupported" if e.startswith("unsupported") else (
            "crashed" if e.startswith("crashed") else "error")
    return cell.get("missing", "–")


def ratio_columns(backends):
    """(numerator, denominator) pairs: every backend against onednn, every convkit backend
    against reference, and auto against the best backend it chooses from ("best")."""
    pairs = [(b, "best") for b in AUTO_BACKENDS if b in backends]
    if "onednn" in backends:
        pairs += [(b, "onednn") for b in backends
                  if b not in ("onednn", "reference") + AUTO_BACKENDS + tuple(PEERS[2:])]
    if "reference" in backends:
        pairs += [(b, "reference") for b in backends
                  if b not in ["reference", "pytorch"] + PEERS[1:]]
    return pairs


def ratio_text(x, bold=False):
    if not x:
        return "–"
    digits = "%.0fx" if x >= 100 else "%.1fx" if x >= 10 else "%.2fx" if x >= 0.1 else "%.2gx"
    text = digits % x
    return "**%s**" % text if bold else text


def best_value(cells):
    """The fastest of the backends auto chooses from (reference only when no other ran)."""
    def values(names):
        return [c.get("value") for b, c in cells.items() if b in names and c.get("value")]
    chosen_from = [b for b in cells if b not in AUTO_BACKENDS + ("pytorch", "reference") and
                   not b.endswith("_direct")]
    return max(values(chosen_from) or values(["reference"]) or [None], key=lambda v: v or 0)


def ratio(cells, a, b):
    va = cells.get(a, {}).get("value")
    vb = best_value(cells) if b == "best" else cells.get(b, {}).get("value")
    return va / vb if va and vb else None


def best_peer(cells):
    """(backend, value) of the fastest peer in this row, or (None, None)."""
    ran = [(cells[p]["value"], p) for p in PEERS if cells.get(p, {}).get("value")]
    return (max(ran)[1], max(ran)[0]) if ran else (None, None)


def best_peer_challengers(backends):
    """The backends compared with the best peer: only in tables with a peer beyond oneDNN (the
    others have their ratio to oneDNN already)."""
    if not any(b in PEERS[2:] for b in backends):
        return []
    return [b for b in CHALLENGERS if b in backends]


def best_ratio(cells, challenger):
    _, value = best_peer(cells)
    mine = cells.get(challenger, {}).get("value")
    return mine / value if mine and value else None


def geomean(values):
    values = [v for v in values if v]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def op_table(table):
    backends, pairs = table["backends"], ratio_columns(table["backends"])
    challengers = best_peer_challengers(backends)
    header = ["shape", "N"] + backends + ["best peer" for _ in challengers[:1]] + [
        "%s / %s" % (a, b if b != "reference" else "ref") for a, b in pairs] + [
        "%s / best peer" % c for c in challengers]
    rows = []
    for r in table["rows"]:
        peer, value = best_peer(r["cells"])
        best = ["%s %s" % (fmt(value), peer) if peer else "–" for _ in challengers[:1]]
        rows.append(["%s/%s" % (r["set"], r["shape"]), str(r["batch"])] +
                    [value_text(r["cells"].get(b, {}), table["peak"]) for b in backends] + best +
                    [ratio_text(ratio(r["cells"], a, b)) for a, b in pairs] +
                    [ratio_text(best_ratio(r["cells"], c)) for c in challengers])
    if pairs or challengers:
        means = [geomean(ratio(r["cells"], a, b) for r in table["rows"]) for a, b in pairs]
        means += [geomean(best_ratio(r["cells"], c) for r in table["rows"]) for c in challengers]
        rows.append(["**geomean**", ""] + [""] * (len(backends) + len(challengers[:1])) +
                    [ratio_text(m, bold=True) for m in means])
    peak = ("%s %s %s" % (table["peak_name"], fmt(table["peak"]), table["unit"])
            if table["peak"] else "%s not measured" % table["peak_name"])
    title = "### %s — %s (%% of %s)" % (table["op"], table["unit"], peak)
    return title + "\n\n" + markdown_table(header, rows)


def summary_table(results):
    """One row per (op, set): geometric means over the set's shapes."""
    backends = order_backends(list(dict.fromkeys(b for t in results["tables"]
                                                 for b in t["backends"])))
    pairs = ratio_columns(backends)
    challengers = best_peer_challengers(backends)
    header = ["op", "set"] + ["%s" % b for b in backends] + [
        "%s / %s" % (a, b if b != "reference" else "ref") for a, b in pairs] + [
        "%s / best peer (min)" % c for c in challengers]
    rows = []
    for t in results["tables"]:
        for set_name, set_rows in rows_by_set(t):
            row = [t["op"], set_name]
            for b in backends:
                if b not in t["backends"]:
                    row.append("")
                    continue
                values = [r["cells"].get(b, {}).get("value") for r in set_rows]
                present = [v for v in values if v]
                if present:
                    text = "%s %s" % (fmt(geomean(present)), t["unit"])
                    if len(present) < len(values):
                        text += " (%d of %d)" % (len(present), len(values))
                elif any("missing" in r["cells"].get(b, {}) for r in set_rows):
                    text = set_rows[0]["cells"][b]["missing"]
                elif any("error" in r["cells"].get(b, {}) for r in set_rows):
                    text = value_text(set_rows[0]["cells"][b], None)
                else:
                    text = "–"
                row.append(text)
            for a, b in pairs:
                row.append(ratio_text(geomean(ratio(r["cells"], a, b) for r in set_rows)))
            for c in challengers:
                ratios = [x for x in (best_ratio(r["cells"], c) for r in set_rows) if x]
                row.append("%s (%s)" % (ratio_text(geomean(ratios)), ratio_text(min(ratios)))
                           if ratios else "–")
            rows.append(row)
    return markdown_table(header, rows)


def rows_by_set(table):
    """[(set, its rows)] in the table's order."""
    return [(s, [r for r in table["rows"] if r["set"] == s])
            for s in dict.fromkeys(r["set"] for r in table["rows"])]


def geomean_and_min(values):
    """"1.23x (0.91x)": the geometric mean and the lowest of the ratios given, or "–"."""
    values = [v for v in values if v]
    return "%s (%s)" % (ratio_text(geomean(values)), ratio_text(min(values))) if values else "–"


def brief_table(results, main="highway"):
    """The README's summary: per op and set, main's geometric mean with its share of the peak, and
    main's ratios to oneDNN, to the best peer and auto's to the best backend, each with the set's
    minimum. Columns nobody ran are left out."""
    columns = [("shapes", None), ("%s (%% of peak)" % main, None),
               ("%s / onednn (min)" % main, (main, "onednn")),
               ("%s / best peer (min)" % main, (main, "peer")),
               ("auto / best (min)", ("auto", "best"))]
    rows = []
    for t in results["tables"]:
        for set_name, set_rows in rows_by_set(t):
            values = [r["cells"].get(main, {}).get("value") for r in set_rows]
            mean = geomean(values)
            value = "–"
            if mean:
                value = "%s %s" % (fmt(mean), t["unit"])
                if t["peak"]:
                    value += " (%.0f%%)" % (100.0 * mean / t["peak"])
            ratios = {}
            for _, pair in columns[2:]:
                a, b = pair
                if b == "peer":  # only beside a peer beyond oneDNN (best_peer_challengers)
                    got = [best_ratio(r["cells"], a) for r in set_rows
                           if a in best_peer_challengers(t["backends"])]
                else:
                    got = [ratio(r["cells"], a, b) for r in set_rows]
                ratios[pair] = geomean_and_min(got)
            rows.append([t["op"], set_name, str(len(set_rows)), value] +
                        [ratios[pair] for _, pair in columns[2:]])
    keep = [i for i in range(len(columns))
            if columns[i][1] is None or any(row[2 + i] != "–" for row in rows)]
    header = ["op", "set"] + [columns[i][0] for i in keep]
    return markdown_table(header, [row[:2] + [row[2 + i] for i in keep] for row in rows])


def render_brief(results):
    """The README's summary block: the machine, the command, one table."""
    peers = any(best_peer_challengers(t["backends"]) for t in results["tables"])
    parts = ["Measured on: " + results["machine"],
             "Command: `%s` (%s)" % (results["command"], results["date"]),
             "Geometric means over each set's shapes; ratios are throughput ratios (above 1x: the "
             "first is faster), with the set's lowest in parentheses; the peaks are fp32 FMA for "
             "convolution (GFLOP/s count the direct convolution's multiply-adds, so Winograd's "
             "3x3 layers can pass 100%%), STREAM triad for pooling%s." % (
                 "; the best peer is the fastest of %s on each shape" % ", ".join(PEERS)
                 if peers else "")]
    if results.get("notes"):
        parts.append("Notes: " + "; ".join(results["notes"]) + ".")
    parts.append(brief_table(results))
    return "\n\n".join(parts) + "\n"


def render_markdown(results, details=False):
    parts = ["Measured on: " + results["machine"],
             "Command: `%s` (%s)" % (results["command"], results["date"]),
             "Figures are geometric means over each set's shapes; ratios are throughput ratios "
             "(above 1x: the first is faster), geometric means over the shapes both ran."]
    if any(b in PEERS[2:] for t in results["tables"] for b in t["backends"]):
        parts.append(
            "Peers: the best peer is the fastest of %s on each shape (min: the lowest ratio of "
            "the set). convkit, oneDNN and XNNPACK run NHWC; ONNX Runtime and OpenVINO run "
            "one-node ONNX graphs (constant weights, packed at session creation) in NCHW, their "
            "native layout, timed through Python (a few us per call); OpenVINO with the f32 "
            "inference precision hint. Same thread count for all; sessions, compiled models, "
            "plans and primitives are created outside the timing." % ", ".join(PEERS))
    if results.get("notes"):
        parts.append("Notes: " + "; ".join(results["notes"]) + ".")
    parts.append(summary_table(results))
    for t in results["tables"]:
        table = op_table(t)
        if details:
            title, body = table.split("\n\n", 1)
            table = "<details><summary>%s, per shape</summary>\n\n%s\n\n</details>" % (
                title.lstrip("# "), body)
        parts.append(table)
    return "\n\n".join(parts) + "\n"


def replace_block(path, begin_marker, end_marker, body):
    """Rewrites the text between the two marker lines of the file at path (markers kept)."""
    with open(path) as f:
        text = f.read()
    begin, end = text.find(begin_marker), text.find(end_marker)
    if begin < 0 or end < begin:
        sys.exit("convkit_compare: %s has no %s ... %s block to rewrite" %
                 (path, begin_marker, end_marker))
    block = ("%s\n<!-- written by tools/convkit_compare.py --update-readme; do not edit by "
             "hand -->\n\n%s\n" % (begin_marker, body))
    with open(path, "w") as f:
        f.write(text[:begin] + block + text[end:])
    print("updated %s" % path)


def update_readme(readme, results):
    """The summary in README.md, every table in docs/PERFORMANCE.md beside it. Both files are
    checked before either is written."""
    folder = os.path.dirname(os.path.abspath(readme))
    summary = (readme,) + SUMMARY_BLOCK[1:]
    tables = (os.path.join(folder, TABLES_BLOCK[0]),) + TABLES_BLOCK[1:]
    for path, begin, end in (summary, tables):
        try:
            with open(path) as f:
                text = f.read()
        except OSError as e:
            sys.exit("convkit_compare: cannot read %s: %s" % (path, e.strerror))
        if begin not in text or end not in text:
            sys.exit("convkit_compare: %s has no %s ... %s block to rewrite" % (path, begin, end))
    replace_block(*summary, render_brief(results))
    replace_block(*tables, render_markdown(results, details=True))


def results_from_bench_json(args, argv):
    """The results of convkit_bench JSON files written elsewhere (args.from_bench_json), each file
    one round (its medians when it has repetitions): nothing is run but --list_shapes, for the
    shapes' order, when a convkit_bench is found."""
    rounds, context, sources = [], {}, []
    for path in args.from_bench_json:
        ctx, records = load_json_tolerant(path)
        if not records:
            sys.exit("convkit_compare: %s holds no convkit_bench results" % path)
        context = context or ctx
        load = ctx.get("load_avg") or []
        sources.append("%s (%s%s)" % (os.path.basename(path), ctx.get("date", "no date")[:16]
                                      .replace("T", " "),
                                      ", load average %.1f" % load[0] if load else ""))
        medians = [r for r in records if r.get("aggregate_name") == "median"]
        rounds.append(medians or [r for r in records if r.get("run_type") != "aggregate"])
    records = merge_rounds(rounds)
    if context.get("convkit_threads"):
        args.threads = int(context["convkit_threads"])
    shapes = {}
    for record in records:
        parts = base_name(record.get("run_name", record["name"])).split("/")
        if len(parts) == 5 and parts[4].startswith("N") and (not args.sets or
                                                             parts[2] in args.sets):
            kind = "conv" if parts[0].startswith("conv") else "pool"
            shapes.setdefault((kind, parts[2], parts[3], int(parts[4][1:])), None)
    order = {}
    bench = args.bench or find_bench_quietly()
    if bench:
        order = {(s["kind"], s["set"], s["name"]): i
                 for i, s in enumerate(list_shapes(bench, args, 0))}
    keys = sorted(shapes, key=lambda k: (order.get(k[:3], len(order)), k[3]))
    shapes = [{"kind": k[0], "set": k[1], "name": k[2], "batch": k[3]} for k in keys]
    ops = list(dict.fromkeys(base_name(r.get("run_name", r["name"])).split("/")[0]
                             for r in records))
    if args.ops is DEFAULT_OPS:  # not given: every op of the files, the default ones first
        args.ops = [op for op in args.ops if op in ops] + [op for op in ops if op not in args.ops]
    peaks = {"gflops": args.peak_gflops and args.peak_gflops * args.threads / args.peak_threads,
             "gbps": args.peak_gbps, "how": "given"}
    command = " ".join(["tools/convkit_compare.py"] + argv)
    results = build_results(args, shapes, records, [], "", [],
                            machine_line(args, peaks, args.commit or "commit not recorded"),
                            command, peaks,
                            ["from convkit_bench JSON: %s; each benchmark's median over the "
                             "files (of two, the slower)"
                             % ", ".join(sources)])
    if context.get("date"):
        results["date"] = context["date"][:16].replace("T", " ")
    return results


def find_bench_quietly():
    """find_bench's convkit_bench, or None."""
    try:
        return find_bench(None)
    except SystemExit:
        return None


# ------------------------------------------------------------------------------------------------
# The machine line.

def cpu_description():
    """"2-core AMD EPYC ... (family 26, model 2), AVX-512": this machine, for the tables."""
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpuinfo = f.read()
        field = lambda key: (re.findall(r"^%s\s*:\s*(.*)$" % key, cpuinfo, re.M)  # noqa
                             or [""])[0].strip()
        model = field("model name") or model
        if field("cpu family"):  # the name alone does not tell Zen 4 from Zen 5
            model += " (family %s, model %s)" % (field("cpu family"), field("model"))
        if " avx512f" in field("flags"):
            model += ", AVX-512"
    except OSError:
        pass
    return "%d-core %s" % (os.cpu_count() or 0, model)


def git_commit():
    """The short hash of the checkout's HEAD, or "unknown"."""
    return subprocess.run(["git", "-C", REPO_DIR, "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip() or "unknown"


def machine_line(args, peaks, commit=None):
    desc = args.machine or cpu_description()
    sha = commit or git_commit()
    def figure(value, unit):
        return ("%.0f %s" % (value, unit)) if value else "not measured"
    return ("%s; run with %d threads; fp32 FMA peak %s, STREAM triad %s (%s); convkit %s"
            % (desc, args.threads, figure(peaks["gflops"], "GFLOP/s"),
               figure(peaks["gbps"], "GB/s"), peaks["how"], sha))


# ------------------------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    comma = lambda s: [x for x in s.split(",") if x]  # noqa: E731
    p.add_argument("--bench", help="the convkit_bench binary (default: found under build*/)")
    p.add_argument("--out", default=os.path.join(REPO_DIR, "out"), help="output folder")
    p.add_argument("--sets", type=comma, help="shape sets, comma-separated (default: all; "
                   "convkit_bench --help lists them)")
    p.add_argument("--ops", type=comma, default=DEFAULT_OPS,
                   help="ops, comma-separated (default: %s; also the _oneshot variants)"
                   % ",".join(DEFAULT_OPS))
    p.add_argument("--backends", type=comma,
                   help="backends, comma-separated (default: every one built in, and pytorch "
                   "when installed)")
    p.add_argument("--threads", type=int, default=2, help="threads per call (default 2)")
    p.add_argument("--repetitions", type=int, default=1,
                   help="repetitions of each benchmark; the median is reported (default 1)")
    p.add_argument("--min-time", type=float, default=0.1,
                   help="seconds each benchmark runs at least (default 0.1)")
    p.add_argument("--batch", type=parse_batch, default={},
                   help="N: every shape at batch N; OP_PREFIX=N,...: per op (e.g. "
                   "pool2d=32,conv2d_bwd=8)")
    p.add_argument("--cpu-time", action="store_true",
                   help="rates per second of CPU time instead of wall time: for --threads 1 on "
                   "an oversubscribed machine, where wall time counts the waits for a core")
    p.add_argument("--rounds", type=int, default=1,
                   help="measure everything this many times in turn; each benchmark's median "
                   "round is kept (default 1)")
    p.add_argument("--reference", choices=["small", "all", "none"], default="small",
                   help="where the slow reference backend runs (default: small problems)")
    p.add_argument("--real-time", action="store_true",
                   help="iterate by wall time (for a loaded machine; names get /real_time)")
    p.add_argument("--peak-gflops", type=float,
                   help="the machine's fp32 peak at --peak-threads threads (default: measured "
                   "by convkit_peak in this run)")
    p.add_argument("--peak-threads", type=int, default=2,
                   help="the threads --peak-gflops was measured with; the peak scales with "
                   "--threads (default 2)")
    p.add_argument("--peak-gbps", type=float,
                   help="the machine's memory bandwidth, STREAM triad (default: measured by "
                   "convkit_peak in this run)")
    p.add_argument("--machine", default="",
                   help="how to name the machine (default: core count and CPU model)")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    p.add_argument("--no-peers", action="store_true",
                   help="leave ONNX Runtime and OpenVINO out (XNNPACK: --backends)")
    p.add_argument("--torch-python", help="the interpreter that runs tools/torch_bench.py")
    p.add_argument("--no-plot", action="store_true", help="draw no charts")
    p.add_argument("--update-readme", nargs="?", const=os.path.join(REPO_DIR, "README.md"),
                   metavar="README", help="rewrite the perf-summary block of README.md and the "
                   "perf-table block of docs/PERFORMANCE.md beside it")
    p.add_argument("--from-results", metavar="RESULTS_JSON",
                   help="run nothing: redraw tables, charts and README from a results.json")
    p.add_argument("--from-bench-json", nargs="+", metavar="BENCH_JSON",
                   help="run nothing: build the tables from convkit_bench JSON files (each one "
                   "round; threads from their context, peaks from --peak-gflops/--peak-gbps)")
    p.add_argument("--commit", help="with --from-bench-json: the convkit commit measured")
    return p.parse_args(argv)


def write_outputs(args, results):
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    markdown = render_markdown(results)
    with open(os.path.join(args.out, "compare.md"), "w") as f:
        f.write(markdown)
    print("\n" + markdown)
    if not args.no_plot:
        try:
            import convkit_plot

            for path in convkit_plot.plot_all(results, args.out):
                print("chart: %s" % path)
        except ImportError as e:
            print("charts skipped: %s (pip install matplotlib)" % e)
    if args.update_readme:
        update_readme(args.update_readme, results)


def main(argv):
    args = parse_args(argv)
    if args.from_results:
        with open(args.from_results) as f:
            results = json.load(f)
        write_outputs(args, results)
        return 0
    if args.from_bench_json:
        write_outputs(args, results_from_bench_json(args, argv))
        return 0

    bench = find_bench(args.bench)
    os.makedirs(args.out, exist_ok=True)
    raw_dir = os.path.join(args.out, "raw")
    shutil.rmtree(raw_dir, ignore_errors=True)
    os.makedirs(raw_dir)
    # The ops grouped by the batch they run at, each group one convkit_bench invocation per op.
    groups = {}
    for op in args.ops:
        groups.setdefault(batch_for(args, op), []).append(op)
    shapes = list({(s["kind"], s["set"], s["name"], s["batch"]): s
                   for batch in groups for s in list_shapes(bench, args, batch)}.values())
    shapes_path = os.path.join(args.out, "shapes.jsonl")
    with open(shapes_path, "w") as f:
        f.writelines(json.dumps(s) + "\n" for s in shapes)
    peer_batch = batch_for(args, "conv2d_fwd")
    peer_shapes = (list_shapes(bench, args, peer_batch)
                   if any(op in PEER_OPS for op in args.ops) else [])

    peaks = measure_peaks(bench, args, raw_dir)
    names = {op: list_tests(bench, bench_flags(args, batch), op)
             for batch, ops in groups.items() for op in ops}
    notes = set()
    if "conv2d_fwd" in names and not any("/xnnpack/" in n for n in names["conv2d_fwd"]) and (
            not args.backends or "xnnpack" in args.backends):
        notes.add("xnnpack: not built into %s (libxnnpack-dev missing when it was configured: "
                  "tools/setup.sh --peers, then re-run cmake); its column is left out" % bench)
    total = sum(len(n) for n in names.values()) * args.rounds
    print("convkit_compare: %d benchmarks (%s) x %d round(s) with %s, %d threads, min time %gs "
          "each; raw output in %s" % (total // args.rounds, ", ".join(
              "%s %d" % (op, len(n)) for op, n in names.items()), args.rounds, bench,
              args.threads, args.min_time, raw_dir), flush=True)
    progress = Progress(total)
    context, rounds = {}, []
    for round_index in range(args.rounds):
        records, round_dir = [], os.path.join(raw_dir, "round%d" % round_index)
        os.makedirs(round_dir)
        for batch, ops in groups.items():
            for op in (op for op in ops if names[op]):
                ctx, got = run_op(bench, bench_flags(args, batch), op, names[op], args,
                                  round_dir, progress)
                context = context or ctx
                records += [r for r in got if wanted_record(args, r)]
        records += run_script_peers(args, peer_shapes, args.out, ".r%d" % round_index, notes)
        rounds.append(records)
    records = merge_rounds(rounds)
    with open(os.path.join(args.out, "convkit_bench.json"), "w") as f:
        json.dump({"context": context, "benchmarks": records}, f, indent=1)

    torch_ops = [op for op in TORCH_OPS if op in args.ops]
    if args.no_torch or (args.backends and "pytorch" not in args.backends):
        torch_ops = []
    torch_records, torch_status = [], ""
    if torch_ops:
        torch_records, torch_status = run_torch(args, torch_ops, shapes_path, args.out)

    command = " ".join(["tools/convkit_compare.py"] + argv)
    results = build_results(args, shapes, records, torch_records, torch_status, torch_ops,
                            machine_line(args, peaks), command, peaks, notes)
    write_outputs(args, results)
    print("total %s" % clock(time.time() - progress.start))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
