"""Latency measurement: runners interleaved in one loop, medians, output differences."""

import statistics
import time

import numpy as np


def interleaved_medians(runners, feeds, rounds, block=3, warmup=3):
    """{name: median ms} of runners {name: fn(feeds)}, timed in turns so that machine noise hits
    all of them alike: each round gives each runner one untimed run (the previous runner's
    spinning threads settle: ONNX Runtime and OpenMP both spin-wait after a run) then `block`
    timed runs."""
    for _ in range(warmup):
        for run in runners.values():
            run(feeds)
    times = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            run(feeds)
            for _ in range(block):
                start = time.perf_counter()
                run(feeds)
                times[name].append(1e3 * (time.perf_counter() - start))
    return {name: statistics.median(t) for name, t in times.items()}


def differences(outputs, expected):
    """(max absolute difference, max-normalised relative difference) over all outputs:
    max |a - b| / max |b| per output, the worst output."""
    worst_abs, worst_rel = 0.0, 0.0
    for a, b in zip(outputs, expected):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a.shape != b.shape:
            return float("inf"), float("inf")
        diff = float(np.max(np.abs(a - b))) if a.size else 0.0
        scale = float(np.max(np.abs(b))) if b.size else 0.0
        worst_abs = max(worst_abs, diff)
        worst_rel = max(worst_rel, diff / scale if scale else diff)
    return worst_abs, worst_rel


def glue_share(profile):
    """Share of a profile's time spent outside convkit layers (numpy ops and layout transposes)."""
    total = sum(step["ms"] for step in profile)
    glue = sum(step["ms"] for step in profile if not step["convkit"])
    return glue / total if total else 0.0
