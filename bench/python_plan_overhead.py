#!/usr/bin/env python3
"""What a Python plan call costs over the C++ plan (issue 15's target: within 5 % + 5 us).

For each shape, rounds alternate between the C++ plan (convkit_bench's conv2d_fwd, Google
Benchmark, one subprocess per round) and the Python plan (convkit.Conv2d.run with out= and
without), so both see the same machine; the table shows medians over the rounds.

    PYTHONPATH=build/release/python python3 bench/python_plan_overhead.py \
        --bench build/release/bench/convkit_bench --threads 2 --rounds 7
"""

import argparse
import json
import statistics
import subprocess
import time

import numpy as np

import convkit

# (set, name, batch, x_shape, w_shape, conv2d keyword arguments): as bench/shape_sets.hpp.
SHAPES = [
    ("seeds", "conv_5x7x4_8_k3s2p1", 2, (2, 5, 7, 4), (3, 3, 4, 8), dict(stride=2, padding=1)),
    ("resnet50", "res2_3x3_64", 1, (1, 56, 56, 64), (3, 3, 64, 64), dict(padding=1)),
]


_US_PER_UNIT = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}


def cpp_plan_us(bench, backend, threads, shape_set, name, batch, min_time):
    """The C++ plan's time per run (us), Google Benchmark's median of 3 repetitions."""
    name_filter = f"^conv2d_fwd/{backend}/{shape_set}/{name}/N{batch}$"
    out = subprocess.run(
        [bench, "--ops=conv2d_fwd", f"--backends={backend}", f"--sets={shape_set}",
         f"--batch={batch}", f"--threads={threads}", f"--benchmark_filter={name_filter}",
         f"--benchmark_min_time={min_time}", "--benchmark_repetitions=3",
         "--benchmark_report_aggregates_only=true", "--benchmark_format=json"],
        check=True, capture_output=True, text=True).stdout
    for run in json.loads(out)["benchmarks"]:
        if run.get("aggregate_name") == "median":
            return run["real_time"] * _US_PER_UNIT[run["time_unit"]]
    raise RuntimeError(f"no median for {name_filter} in convkit_bench's output")


def python_us(call, min_time):
    """Median over 7 samples of the mean time of back-to-back calls (us)."""
    calls = 1
    while True:  # calls per sample: at least min_time / 7
        start = time.perf_counter()
        for _ in range(calls):
            call()
        if time.perf_counter() - start >= min_time / 7:
            break
        calls *= 2
    samples = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(samples)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench", default="build/release/bench/convkit_bench")
    parser.add_argument("--backend", default="highway")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--min-time", type=float, default=0.3, help="seconds per measurement")
    args = parser.parse_args()
    convkit.set_num_threads(args.threads)
    rng = np.random.default_rng(15)

    print(f"convkit {convkit.__version__}, backend {args.backend}, {args.threads} threads, "
          f"{args.rounds} rounds; medians in us")
    print(f"{'shape':<22} {'impl':<22} {'C++ plan':>9} {'py out=':>9} {'py new y':>9} "
          f"{'overhead':>9} {'allowed':>8}  within")
    for shape_set, name, batch, x_shape, w_shape, kwargs in SHAPES:
        x = rng.integers(-3, 4, size=x_shape).astype(np.float32)
        w = rng.integers(-3, 4, size=w_shape).astype(np.float32)
        b = rng.integers(-3, 4, size=w_shape[3]).astype(np.float32)
        plan = convkit.Conv2d(w, b, x_shape=x_shape, backend=args.backend, **kwargs)
        out = np.empty(plan.y_shape, np.float32)
        cpp, py_out, py_new = [], [], []
        for _ in range(args.rounds):
            cpp.append(cpp_plan_us(args.bench, args.backend, args.threads, shape_set, name, batch,
                                   args.min_time))
            py_out.append(python_us(lambda: plan.run(x, out=out), args.min_time))
            py_new.append(python_us(lambda: plan.run(x), args.min_time))
        c, p, n = (statistics.median(v) for v in (cpp, py_out, py_new))
        allowed = 0.05 * c + 5.0
        print(f"{name:<22} {plan.impl:<22} {c:9.2f} {p:9.2f} {n:9.2f} {p - c:9.2f} {allowed:8.2f}"
              f"  {'yes' if p - c <= allowed else 'NO'}")


if __name__ == "__main__":
    main()
