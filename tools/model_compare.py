#!/usr/bin/env python3
"""model_compare: end-to-end latency of the model set on convkit, ONNX Runtime and OpenVINO.

Builds each model of convkit.onnx.models at its benchmark size, loads it in convkit.onnx (layers
created at load) and in each installed peer (fp32, same thread count), times all runtimes
interleaved in one loop (medians), checks the outputs against ONNX Runtime's (max-normalised
relative difference) and profiles convkit's steps for the glue (non-convkit) share. Prints a
Markdown table and writes under --out: models.json, models.md and models.png (a bar chart).
tools/compare.sh --models runs it after building the Python extension.

--update-readme rewrites two marked blocks: the table between <!-- models-table:begin --> and
<!-- models-table:end --> in docs/PERFORMANCE.md and one summary line between
<!-- models-summary:begin --> and <!-- models-summary:end --> in README.md. --from-results redraws
the table, chart and blocks from an earlier run's models.json without measuring.

  python3 tools/model_compare.py                           # the whole set, 2 threads
  python3 tools/model_compare.py --models yolov8n,resnet50 --threads 1 --rounds 20
  python3 tools/model_compare.py --update-readme           # and rewrite the README's, docs' blocks
  python3 tools/model_compare.py --from-results out/models.json --update-readme
  python3 tools/model_compare.py --bf16     # also convkit and OpenVINO with bf16 (issue 19)

--bf16 adds two runners to the same interleaved loop: convkit.onnx with fpmath="bf16" and OpenVINO
with its bf16 precision hint, and a second table: bf16 against convkit's fp32 and OpenVINO's bf16,
with the outputs' distance from convkit's fp32 outputs.
"""

import argparse
import datetime
import json
import math
import os
import sys

import numpy as np

TOOLS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(TOOLS_DIR)
sys.path.insert(0, TOOLS_DIR)
from convkit_compare import cpu_description, git_commit  # noqa: E402

PEERS = ["onnxruntime", "openvino"]
PEER_NAMES = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}
# The blocks --update-readme rewrites: (file relative to the README's folder, begin, end).
SUMMARY_BLOCK = ("README.md", "<!-- models-summary:begin -->", "<!-- models-summary:end -->")
TABLE_BLOCK = (os.path.join("docs", "PERFORMANCE.md"), "<!-- models-table:begin -->",
               "<!-- models-table:end -->")


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
    if args.bf16:
        runners["convkit bf16"] = convkit.onnx.load(proto, backend=args.backend,
                                                    threads=args.threads, fpmath="bf16").run
        try:
            runners["openvino bf16"] = make_runner("openvino", proto, args.threads,
                                                   {input_name: shape}, bf16=True)
        except PeerUnavailable as error:
            notes.append(f"openvino bf16 skipped: {error}")
    convkit.set_num_threads(args.threads)
    medians = interleaved_medians(runners, feeds, args.rounds)
    ours = model.run(feeds)
    diffs = {peer: differences(ours, runners[peer](feeds))[1] for peer in runners
             if peer != "convkit"}  # the bf16 runners' too: their distance from convkit fp32
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


def bf16_table(results):
    """convkit bf16 against convkit fp32 and OpenVINO bf16 (--bf16 runs), or None."""
    rows = [r for r in results if "convkit bf16" in r["ms"]]
    if not rows:
        return None
    head = ["model", "input", "convkit bf16 ms", "convkit fp32 ms", "bf16 speed-up",
            "OpenVINO bf16 ms", "vs OpenVINO bf16", "rel diff vs convkit fp32"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        ms, ours = r["ms"], r["ms"]["convkit bf16"]
        ov = ms.get("openvino bf16")
        row = [r["model"], "x".join(str(d) for d in r["input"][1:]), f"{ours:.2f}",
               f"{ms['convkit']:.2f}", f"{ms['convkit'] / ours:.2f}x",
               "—" if ov is None else f"{ov:.2f}", "—" if ov is None else f"{ov / ours:.2f}x",
               f"{r['rel_diff']['convkit bf16']:.1e}"]
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


def header(run):
    """The line above the table: what was measured, where, with which command."""
    return (f"End-to-end latency, median of interleaved runs, {run['threads']} threads, fp32, "
            f"backend {run['backend'] or 'auto'}; {run.get('machine', 'machine not recorded')}; "
            f"convkit {run.get('commit', 'commit not recorded')}; "
            f"{run.get('date', 'date not recorded')}; "
            f"`{run.get('command', 'command not recorded')}`")


def summary_line(run, peers):
    """One sentence for the README: convkit's speed relative to each peer across the models."""
    parts = []
    for peer in peers:
        ratios = {r["model"]: r["ms"][peer] / r["ms"]["convkit"] for r in run["results"]
                  if peer in r["ms"]}
        if not ratios:
            continue
        mean = math.exp(sum(math.log(v) for v in ratios.values()) / len(ratios))
        low, high = min(ratios, key=ratios.get), max(ratios, key=ratios.get)
        parts.append(f"to {PEER_NAMES.get(peer, peer)} {mean:.2f}x in geometric mean "
                     f"({ratios[low]:.2f}x on {low} to {ratios[high]:.2f}x on {high})")
    return (f"End-to-end models ({len(run['results'])} of them, {run['threads']} threads, "
            f"{run.get('machine', 'machine not recorded')}, {run.get('date', 'date not recorded')}"
            f"): convkit.onnx's speed relative " + ("; ".join(parts) or "to no peer measured") +
            "; above 1x convkit is faster.")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet50,yolov8n,mobilenetv2,efficientnet_b0,unet")
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--profile-repeats", type=int, default=5)
    parser.add_argument("--backend", default=None)
    parser.add_argument("--bf16", action="store_true",
                        help="also time convkit (fpmath='bf16') and OpenVINO with bf16")
    parser.add_argument("--build", default=os.path.join(REPO_DIR, "build", "release"))
    parser.add_argument("--out", default="out")
    parser.add_argument("--update-readme", nargs="?", const=os.path.join(REPO_DIR, "README.md"),
                        metavar="README", help="rewrite the models-summary block of README.md "
                        "and the models-table block of docs/PERFORMANCE.md beside it")
    parser.add_argument("--from-results", metavar="MODELS_JSON",
                        help="measure nothing: redraw the table, chart and blocks from a "
                        "models.json")
    args = parser.parse_args(argv)
    args.peers = [p for p in args.peers.split(",") if p]
    os.makedirs(args.out, exist_ok=True)
    if args.from_results:
        with open(args.from_results) as f:
            run = json.load(f)
    else:
        run = measure_all(args, argv)
    write_outputs(args, run)
    return 0


def measure_all(args, argv):
    """models.json's content: every model measured, and how."""
    convkit = import_convkit(args.build)
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
    return dict(threads=args.threads, backend=args.backend, peers=args.peers,
                machine=cpu_description(), commit=git_commit(), command=command,
                date=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), results=results)


def write_outputs(args, run):
    """models.md, models.json and models.png under --out; the blocks with --update-readme."""
    peers = run.get("peers", args.peers)
    text = header(run) + "\n\n" + table(run["results"], peers) + "\n"
    bf16 = bf16_table(run["results"])
    if bf16 is not None:
        text += "\nfpmath = bf16 (same run):\n\n" + bf16 + "\n"
    print("\n" + text)
    with open(os.path.join(args.out, "models.md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "models.json"), "w") as f:
        json.dump(run, f, indent=1)
    chart(run["results"], peers, os.path.join(args.out, "models.png"),
          f"convkit.onnx vs peers, {run['threads']} threads, fp32")
    if args.update_readme:
        update_readme(args.update_readme, text, summary_line(run, peers))


def update_readme(readme, table_text, summary):
    """The summary line in README.md, the table in docs/PERFORMANCE.md beside it; both files are
    checked before either is written."""
    folder = os.path.dirname(os.path.abspath(readme))
    blocks = [((readme,) + SUMMARY_BLOCK[1:], summary + "\n"),
              ((os.path.join(folder, TABLE_BLOCK[0]),) + TABLE_BLOCK[1:], table_text)]
    texts = []
    for (path, begin_marker, end_marker), body in blocks:
        try:
            with open(path) as f:
                text = f.read()
        except OSError as e:
            sys.exit(f"model_compare: cannot read {path}: {e.strerror}")
        begin, end = text.find(begin_marker), text.find(end_marker)
        if begin < 0 or end < begin:
            sys.exit(f"model_compare: {path} has no {begin_marker} ... {end_marker} block")
        note = "<!-- written by tools/model_compare.py --update-readme; do not edit by hand -->"
        texts.append((path, f"{text[:begin]}{begin_marker}\n{note}\n\n{body}\n{text[end:]}"))
    for path, text in texts:
        with open(path, "w") as f:
            f.write(text)
        print(f"updated {path}")


if __name__ == "__main__":
    sys.exit(main())
