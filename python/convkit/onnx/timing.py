"""Latency measurement: runners interleaved in one loop, medians, output differences."""

import statistics
import time

import numpy as np


# The pause before each runner's turn: the previous runner's threads spin-wait after its last run
# (ONNX Runtime's pool, OpenMP's, OpenVINO's) and take a core from whoever runs next. Measured on
# two cores with MobileNetV2: convkit right after ONNX Runtime ran 2.4x slower, ONNX Runtime right
# after convkit 1.7x, with 10 ms between them still 2.9x; 50 ms brought both within 1.25x.
SETTLE_S = 0.2


def interleaved_medians(runners, feeds, rounds, block=3, warmup=3):
    """{name: median ms} of runners {name: fn(feeds)}, timed in turns so that slow drifts of the
    machine hit all of them alike: each turn is a pause (SETTLE_S: the previous runner's threads
    stop spinning), one untimed run (this runner's threads wake up) and `block` timed runs back
    to back, as a pipeline calls a model."""
    for _ in range(warmup):
        for run in runners.values():
            run(feeds)
    times = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            time.sleep(SETTLE_S)
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
