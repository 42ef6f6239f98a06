"""python -m convkit.onnx: run an ONNX model on convkit, time it, profile it, compare it.

    python -m convkit.onnx MODEL.onnx --shape 1,3,320,320 [--backend auto|highway|onednn]
        [--threads N] [--compare onnxruntime,openvino] [--profile [--alone]] [--repeats 10]

MODEL is a path, or a name of the built-in model set (convkit.onnx.models: resnet50,
mobilenetv2, yolov8n, efficientnet_b0, unet). --shape fixes the input's shape (NAME=1,3,H,W for
one of several inputs; repeatable). Prints the median latency of plain runs (layers created at
load, outside the timing), with --profile the ten slowest steps and the glue (non-convkit) share
(with --alone also each step's time called alone: the part of a step's time that inside the
network goes to data, weights and, for numpy's glue, the interpreter's state coming from memory),
with --compare each peer's latency in the same interleaved loop and its output differences.
"""

import argparse
import os
import sys

import numpy as np

from .. import _convkit as ck
from . import load, models
from .peers import PeerUnavailable, make_runner
from .timing import differences, glue_share, interleaved_medians


def _parse_shapes(values, input_names):
    shapes = {}
    for value in values or []:
        name, _, dims = value.rpartition("=")
        if not name:
            if len(input_names) != 1:
                raise SystemExit(f"--shape {value}: the model has inputs {input_names}; write "
                                 "NAME=dims")
            name = input_names[0]
        shapes[name] = tuple(int(d) for d in dims.split(","))
    return shapes


def _read_model(path):
    import onnx

    if os.path.isfile(path):
        return onnx.load(path)
    if path in models.MODELS:
        return models.build(path)
    raise SystemExit(f"{path}: no such file, nor a model of the set ({', '.join(models.MODELS)})")


def _runtime_inputs(model):
    initializers = {i.name for i in model.graph.initializer}
    return [v.name for v in model.graph.input if v.name not in initializers]


def profile_lines(profile, count=10):
    slowest = sorted(profile, key=lambda s: -s["ms"])[:count]
    alone = any("alone_ms" in step for step in profile)
    head = f"{'ms':>8}  " + (f"{'alone ms':>8}  " if alone else "")
    lines = [head + f"{'op':<18} {'implementation':<34} node"]
    for step in slowest:
        line = f"{step['ms']:8.3f}  "
        if alone:
            line += f"{step['alone_ms']:8.3f}  " if "alone_ms" in step else f"{'':>8}  "
        lines.append(line + f"{step['op']:<18} {step['impl']:<34} {step['name']}")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m convkit.onnx", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--shape", action="append", help="N,C,H,W or NAME=N,C,H,W")
    parser.add_argument("--backend", default=None, help="auto, highway, onednn or reference")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fpmath", default="strict", choices=("strict", "bf16"),
                        help="the convolutions' compute mode (bf16: x and w may be rounded)")
    parser.add_argument("--keep-denormals", action="store_true",
                        help="IEEE denormals in convkit's layers (default: flushed to zero)")
    parser.add_argument("--compare", default="", help="comma-separated: onnxruntime,openvino")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--alone", action="store_true",
                        help="with --profile: also time each step alone, many calls in a row "
                             "(its data and weights then stay in cache)")
    parser.add_argument("--repeats", type=int, default=10,
                        help="rounds of timed runs (3 runs per runtime per round)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    proto = _read_model(args.model)
    names = _runtime_inputs(proto)
    shapes = _parse_shapes(args.shape, names)
    model = load(proto, input_shapes=shapes, backend=args.backend, threads=args.threads,
                 fpmath=args.fpmath, flush_denormals=not args.keep_denormals)
    rng = np.random.default_rng(args.seed)
    feeds = {name: rng.standard_normal(model.graph.input_shapes[name]).astype(
        model.graph.input_dtypes[name]) for name in names}
    all_shapes = {name: model.graph.input_shapes[name] for name in names}
    print(f"model {args.model}; inputs {all_shapes}; backend {args.backend or 'default'}; "
          f"threads {args.threads}; fpmath {args.fpmath}; denormals "
          f"{'kept' if args.keep_denormals else 'flushed'}; convkit steps {sum(s.is_convkit for s in model.steps)} of "
          f"{len(model.steps)}")
    unfused = [s for s in model.steps if getattr(s.layer, "numpy_post_ops", False)]
    if unfused:
        print(f"{len(unfused)} convolutions run their activation or residual add in numpy "
              "(this convkit does not fuse them)")

    runners = {"convkit": model.run}
    for peer in [p for p in args.compare.split(",") if p]:
        try:
            runners[peer] = make_runner(peer, proto, args.threads, all_shapes)
        except PeerUnavailable as error:
            print(f"{peer}: skipped: {error}")
    ck.set_num_threads(args.threads)
    medians = interleaved_medians(runners, feeds, args.repeats)
    reference = model.run(feeds)
    print(f"\n{'runtime':<12} {'median ms':>10} {'convkit speed-up':>17} {'max abs diff':>13} "
          f"{'max rel diff':>13}")
    for name, ms in medians.items():
        if name == "convkit":
            print(f"{name:<12} {ms:10.3f} {'':>17} {'':>13} {'':>13}")
            continue
        abs_diff, rel_diff = differences(reference, runners[name](feeds))
        print(f"{name:<12} {ms:10.3f} {ms / medians['convkit']:16.2f}x {abs_diff:13.3e} "
              f"{rel_diff:13.3e}")
    if args.profile:
        profile = model.profile(feeds, repeats=max(5, args.repeats // 3), alone=args.alone)
        print(f"\nten slowest steps (median of per-step times); glue (non-convkit) share "
              f"{100 * glue_share(profile):.1f}%")
        if args.alone:
            for title, kind in (("convkit steps", True), ("glue steps", False)):
                steps = [s for s in profile if s["convkit"] == kind and "alone_ms" in s]
                print(f"{title}: {sum(s['ms'] for s in steps):.3f} ms in the model, "
                      f"{sum(s['alone_ms'] for s in steps):.3f} ms alone")
        print("\n".join(profile_lines(profile)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
