#!/usr/bin/env python3
"""PyTorch as a peer column for tools/convkit_compare.py: conv2d forward and pooling forward.

Reads the shapes convkit_bench prints with --list_shapes (one JSON object per line), times
PyTorch on each in channels_last (NHWC) memory format under torch.no_grad(), and writes a JSON
list of records named like convkit_bench's, "<op>/pytorch/<set>/<shape>/N<batch>", with the
same counters: GFLOPS (nominal 2*N*OH*OW*OC*KH*KW*IC/groups) and GBps (x read + y written).

A shape PyTorch cannot express (asymmetric padding; pooling padding above half the window) gets
an "unsupported: ..." error, as a convkit backend that refuses would.

  python3 tools/torch_bench.py --shapes out/shapes.jsonl --ops conv2d_fwd,pool2d_fwd_max \
      --threads 2 --out out/torch.json
"""

import argparse
import json
import statistics
import sys
import time

OPS = ("conv2d_fwd", "pool2d_fwd_max", "pool2d_fwd_avg")


def time_call(fn, min_time, repetitions):
    """Median over repetitions of the mean time per call, each over >= min_time seconds."""
    fn()  # warm-up: allocator, oneDNN/MKL kernel selection
    fn()
    samples = []
    for _ in range(repetitions):
        calls, start = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_time:
                break
        samples.append(elapsed / calls)
    return statistics.median(samples)


def symmetric_pad(shape):
    top, bottom, left, right = shape["pad"]
    if top != bottom or left != right:
        raise ValueError("unsupported: PyTorch pads symmetrically; pad %s" % shape["pad"])
    return (top, left)


def conv_fn(torch, shape):
    n, h, w, c = shape["x"]
    kh, kw, cin_g, cout = shape["w"]
    x = torch.randn(n, c, h, w).to(memory_format=torch.channels_last)
    weight = torch.randn(cout, cin_g, kh, kw).to(memory_format=torch.channels_last)
    bias = torch.randn(cout)
    padding = symmetric_pad(shape)
    f = torch.nn.functional.conv2d
    stride, dilation, groups = tuple(shape["stride"]), tuple(shape["dilation"]), shape["groups"]
    return lambda: f(x, weight, bias, stride, padding, dilation, groups)


def pool_fn(torch, shape, mode):
    n, h, w, c = shape["x"]
    x = torch.randn(n, c, h, w).to(memory_format=torch.channels_last)
    F = torch.nn.functional
    if shape["global"]:
        if mode == "max":
            return lambda: F.adaptive_max_pool2d(x, 1)
        return lambda: F.adaptive_avg_pool2d(x, 1)
    kernel, stride = tuple(shape["window"]), tuple(shape["stride"])
    padding = symmetric_pad(shape)
    if padding[0] * 2 > kernel[0] or padding[1] * 2 > kernel[1]:
        raise ValueError("unsupported: PyTorch needs padding <= window / 2")
    ceil_mode = shape["ceil_mode"]
    if mode == "max":
        return lambda: F.max_pool2d(x, kernel, stride, padding, 1, ceil_mode)
    count_include_pad = shape["count_include_pad"]
    return lambda: F.avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad)


def elements(dims):
    total = 1
    for d in dims:
        total *= d
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", required=True, help="convkit_bench --list_shapes output")
    parser.add_argument("--ops", default=",".join(OPS), help="comma-separated, from %s" % (OPS,))
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: default)")
    parser.add_argument("--min-time", type=float, default=0.1, help="seconds per repetition")
    parser.add_argument("--repetitions", type=int, default=1)
    parser.add_argument("--out", required=True, help="where to write the JSON records")
    args = parser.parse_args()

    import torch  # here, so that --help works without it

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ops = [op for op in args.ops.split(",") if op in OPS]
    with open(args.shapes) as f:
        shapes = [json.loads(line) for line in f if line.strip()]

    label = "pytorch %s, %d threads, mkldnn %s" % (
        torch.__version__, torch.get_num_threads(),
        "on" if torch.backends.mkldnn.is_available() else "off")
    records = []
    for op in ops:
        kind = "conv" if op.startswith("conv") else "pool"
        for shape in (s for s in shapes if s["kind"] == kind):
            name = "%s/pytorch/%s/%s/N%d" % (op, shape["set"], shape["name"], shape["batch"])
            record = {"name": name, "run_name": name, "run_type": "iteration", "label": label}
            try:
                with torch.no_grad():
                    if kind == "conv":
                        fn = conv_fn(torch, shape)
                    else:
                        fn = pool_fn(torch, shape, "max" if op.endswith("max") else "avg")
                    seconds = time_call(fn, args.min_time, args.repetitions)
                record.update(real_time=seconds * 1e6, time_unit="us")
                if kind == "conv":
                    record["GFLOPS"] = shape["flops"] / seconds * 1e-9
                else:
                    moved = (elements(shape["x"]) + elements(shape["y"])) * 4
                    record["GBps"] = moved / seconds * 1e-9
                counter = ("GFLOPS=%.4g" % record["GFLOPS"] if kind == "conv" else
                           "GBps=%.4g" % record["GBps"])
                print("%-70s %10.1f us  %s" % (name, seconds * 1e6, counter), flush=True)
            except Exception as e:  # a shape torch refuses is a table cell, not a failure
                message = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
                if not message.startswith("unsupported"):
                    message = "error: " + message
                record.update(error_occurred=True, error_message=message)
                print("%-70s %s" % (name, message), flush=True)
            records.append(record)

    with open(args.out, "w") as f:
        json.dump({"context": {"torch_version": torch.__version__,
                               "torch_threads": torch.get_num_threads(),
                               "torch_mkldnn": torch.backends.mkldnn.is_available()},
                   "benchmarks": records}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
