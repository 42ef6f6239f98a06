#!/usr/bin/env python3
"""model_compare: end-to-end latency of the model set on convkit, ONNX Runtime and OpenVINO.

Builds each model of convkit.onnx.models at its benchmark size, loads it in convkit.onnx (layers
created at load) and in each installed peer (fp32, same thread count), times all runtimes
interleaved in one loop (medians), checks the outputs against ONNX Runtime's (max-normalised
relative difference) and profiles convkit's steps for the glue (non-convkit) share. Prints a
Markdown table and writes under --out: models.json, models.md and models.png (a bar chart).
tools/compare.sh --models runs it after building the Python extension.

  python3 tools/model_compare.py                           # the whole set, 2 threads
  python3 tools/model_compare.py --models yolov8n,resnet50 --threads 1 --rounds 20
  python3 tools/model_compare.py --update-readme    # and rewrite README.md's models table
"""

import argparse
import json
import os
import platform
import sys

import numpy as np

TOOLS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(TOOLS_DIR)
PEERS = ["onnxruntime", "openvino"]
README_BEGIN = "<!-- models-table:begin -->"
README_END = "<!-- models-table:end -->"


def import_convkit(build_dir):
    """convkit from the build tree (as ctest uses it) unless it is importable already."""
    try:
        import convkit.onnx  # noqa: F401
    except ImportError:
        sys.path.insert(0, os.path.join(build_dir, "python"))
        import convkit.onnx  # noqa: F401
    import convkit

    return convkit


def measure(convkit, name, args):
    from convkit.onnx import models
    from convkit.onnx.peers import PeerUnavailable, make_runner
    from convkit.onnx.timing import differences, glue_share, interleaved_medians

    proto = models.build(name)
    input_name, shape = models.input_shape(proto)
    model = convkit.onnx.load(proto, backend=args.backend, threads=args.threads)
    feeds = {input_name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    runners, notes = {"convkit": model.run}, []
    for peer in args.peers:
        try:
            runners[peer] = make_runner(peer, proto, args.threads, {input_name: shape})
        except PeerUnavailable as error:
            notes.append(f"{peer} skipped: {error}")
    convkit.set_num_threads(args.threads)
    medians = interleaved_medians(runners, feeds, args.rounds)
    ours = model.run(feeds)
    diffs = {peer: differences(ours, runners[peer](feeds))[1] for peer in runners
             if peer != "convkit"}
    profile = model.profile(feeds, repeats=args.profile_repeats)
    return dict(model=name, input=list(shape), ms=medians, rel_diff=diffs,
                glue=glue_share(profile), notes=notes,
                convkit_steps=sum(s.is_convkit for s in model.steps), steps=len(model.steps),
                numpy_post_ops=sum(getattr(s.layer, "numpy_post_ops", False)
                                   for s in model.steps))


def table(results, peers):
    head = ["model", "input", "convkit ms"] + [f"{p} ms" for p in peers]
    head += [f"vs {p}" for p in peers] + ["glue share", "max rel diff vs onnxruntime"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        ms = r["ms"]
        row = [r["model"], "x".join(str(d) for d in r["input"][1:]), f"{ms['convkit']:.2f}"]
        row += [f"{ms[p]:.2f}" if p in ms else "—" for p in peers]
        row += [f"{ms[p] / ms['convkit']:.2f}x" if p in ms else "—" for p in peers]
        row.append(f"{100 * r['glue']:.1f} %")
        diff = r["rel_diff"].get("onnxruntime")
        row.append("—" if diff is None else f"{diff:.1e}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def chart(results, peers, path, title):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no chart")
        return
    names = ["convkit"] + [p for p in peers if any(p in r["ms"] for r in results)]
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(results), 4))
    width = 0.8 / len(names)
    for i, runtime in enumerate(names):
        values = [r["ms"].get(runtime, 0) for r in results]
        ax.bar(np.arange(len(results)) + i * width, values, width, label=runtime)
    ax.set_xticks(np.arange(len(results)) + width * (len(names) - 1) / 2)
    ax.set_xticklabels([r["model"] for r in results])
    ax.set_ylabel("median latency, ms (lower is better)")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"chart: {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet50,yolov8n,mobilenetv2,efficientnet_b0,unet")
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--profile-repeats", type=int, default=5)
    parser.add_argument("--backend", default=None)
    parser.add_argument("--build", default=os.path.join(REPO_DIR, "build", "release"))
    parser.add_argument("--out", default="out")
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args(argv)
    args.peers = [p for p in args.peers.split(",") if p]
    convkit = import_convkit(args.build)
    os.makedirs(args.out, exist_ok=True)
    results = []
    for name in args.models.split(","):
        result = measure(convkit, name, args)
        results.append(result)
        for note in result["notes"]:
            print(note)
        print(f"{name}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in result["ms"].items())
              + f"; glue {100 * result['glue']:.1f} %; {result['numpy_post_ops']} convolutions "
              "with numpy post-ops", flush=True)
    command = ("python3 tools/model_compare.py " + " ".join(sys.argv[1:] if argv is None
                                                             else argv)).strip()
    header = (f"End-to-end latency, median of interleaved runs, {args.threads} threads, fp32, "
              f"backend {args.backend or 'auto'}; {platform.processor() or platform.machine()}; "
              f"`{command}`")
    text = header + "\n\n" + table(results, args.peers) + "\n"
    print("\n" + text)
    with open(os.path.join(args.out, "models.md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "models.json"), "w") as f:
        json.dump(dict(threads=args.threads, backend=args.backend, results=results), f, indent=1)
    chart(results, args.peers, os.path.join(args.out, "models.png"),
          f"convkit.onnx vs peers, {args.threads} threads, fp32")
    if args.update_readme:
        update_readme(text)
    return 0


def update_readme(text):
    path = os.path.join(REPO_DIR, "README.md")
    with open(path) as f:
        readme = f.read()
    begin, end = readme.find(README_BEGIN), readme.find(README_END)
    if begin < 0 or end < begin:
        sys.exit(f"model_compare: {path} has no {README_BEGIN} ... {README_END} block")
    readme = readme[:begin + len(README_BEGIN)] + "\n" + text + readme[end:]
    with open(path, "w") as f:
        f.write(readme)
    print(f"updated {path}")


if __name__ == "__main__":
    sys.exit(main())
