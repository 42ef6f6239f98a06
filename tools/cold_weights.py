#!/usr/bin/env python3
"""cold_weights: a convolution's time with its weights in cache and with them from memory.

Inside a network each layer's weights come from memory: the layers before it (ResNet-50 holds
100 MB of weights) have evicted them from L2 and L3. A single-layer benchmark repeats one plan, so
its weights stay cached. This tool times both, per backend: "warm" repeats one plan; "cold" runs
enough plans of the same shape with different weights (at least 64 MB in all) round robin, each
call then reading its weights from memory as in a network. Plans are created outside the timing;
each round times every backend in turn; medians over the rounds.

  python3 tools/cold_weights.py 7,512,2048,1,1 7,512,512,3,1        # H,C_in,C_out,K,stride
  python3 tools/cold_weights.py --backends highway --threads 1 --rounds 9 14,256,1024,1,1

A shape is H,C_in,C_out,K,stride: a square H x H input at batch 1, a K x K kernel with padding
K // 2 and a bias (no activation: oneDNN 2.6 refuses a NaN-keeping ReLU). Run it with the package
importable (PYTHONPATH=build/release/python).
"""

import argparse
import statistics
import time

import numpy as np

import convkit as ck

COLD_BYTES = 64 << 20  # weights run round robin: twice this machine's L3


def parse_shape(text):
    h, c_in, c_out, k, stride = (int(v) for v in text.split(","))
    return h, c_in, c_out, k, stride


def make_plans(shape, backend, copies, rng):
    h, c_in, c_out, k, stride = shape
    plans = []
    for _ in range(copies):
        w = (rng.random((k, k, c_in, c_out), dtype=np.float32) - 0.5) * 0.1
        b = np.zeros(c_out, np.float32)
        plans.append(ck.Conv2d(w, b, x_shape=(1, h, h, c_in), stride=stride, padding=k // 2,
                               backend=backend))
    return plans


def time_call(plan, x, y):
    start = time.perf_counter()
    plan.run(x, out=y)
    return time.perf_counter() - start


def one_round(plans, x, y):
    """(cold, warm) seconds: the median call over the plans round robin, then over 8 calls of the
    first plan after one untimed call."""
    cold = statistics.median(time_call(p, x, y) for p in plans[1:] + plans[:1])
    time_call(plans[0], x, y)
    warm = statistics.median(time_call(plans[0], x, y) for _ in range(8))
    return cold, warm


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("shapes", nargs="+", help="H,C_in,C_out,K,stride")
    parser.add_argument("--backends", default="highway,onednn")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    ck.set_num_threads(args.threads)
    backends = args.backends.split(",")
    rng = np.random.default_rng(0)
    print(f"{'shape':22s} {'weights':>9s}  " + "  ".join(
        f"{b + ' warm':>13s} {b + ' cold':>13s} {'cold/warm':>9s}" for b in backends))
    for text in args.shapes:
        shape = parse_shape(text)
        h, c_in, c_out, k, _ = shape
        weight_bytes = k * k * c_in * c_out * 4
        copies = max(3, COLD_BYTES // weight_bytes + 1)
        plans = {b: make_plans(shape, b, copies, rng) for b in backends}
        x = rng.random((1, h, h, c_in), dtype=np.float32)
        y = {b: np.empty_like(plans[b][0].run(x)) for b in backends}
        times = {b: ([], []) for b in backends}
        for _ in range(args.rounds):
            for b in backends:
                cold, warm = one_round(plans[b], x, y[b])
                times[b][0].append(cold)
                times[b][1].append(warm)
        cells = []
        for b in backends:
            cold, warm = (1e3 * statistics.median(t) for t in times[b])
            cells.append(f"{warm:10.3f} ms {cold:10.3f} ms {cold / warm:8.2f}x")
        print(f"{text:22s} {weight_bytes / 2**20:6.2f} MiB  " + "  ".join(cells), flush=True)


if __name__ == "__main__":
    main()
