#!/usr/bin/env python3
"""Charts for tools/convkit_compare.py: per op, bars per shape per backend, one panel per set.

Used as a module by convkit_compare.py; run alone it redraws the charts from a saved comparison:
  python3 tools/convkit_plot.py out/results.json --out out/
"""

import argparse
import json
import os
import sys


def plot_op(op, unit, peak, rows, backends, path, machine="", color_of=None):
    """Writes one PNG.

    rows: [(set, shape label, {backend: value or None})] in table order.
    backends: column order. peak: a dashed line at the machine's peak (None for none).
    color_of: {backend: color}, so that a backend keeps its color across charts.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = []
    for set_name, _, _ in rows:
        if set_name not in sets:
            sets.append(set_name)
    per_set = {s: [r for r in rows if r[0] == s] for s in sets}
    widest = max(len(v) for v in per_set.values())
    width = min(40.0, max(9.0, 0.22 * widest * max(1, len(backends)) + 2.5))
    fig, axes = plt.subplots(len(sets), 1, figsize=(width, 3.6 * len(sets) + 0.8), squeeze=False)
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    color_of = color_of or {b: cycle[i % len(cycle)] for i, b in enumerate(backends)}
    bar = 0.8 / max(1, len(backends))
    for ax, set_name in zip(axes[:, 0], sets):
        set_rows = per_set[set_name]
        for b, backend in enumerate(backends):
            xs, ys = [], []
            for i, (_, _, values) in enumerate(set_rows):
                v = values.get(backend)
                if v:
                    xs.append(i - 0.4 + bar * (b + 0.5))
                    ys.append(v)
            if ys:
                ax.bar(xs, ys, bar, label=backend, color=color_of[backend])
        if peak:
            ax.axhline(peak, color="black", linestyle="--", linewidth=0.8)
            ax.text(-0.5, peak, " peak %g %s" % (peak, unit), va="bottom", ha="left", fontsize=7)
        ax.set_yscale("log")
        ax.set_xticks(range(len(set_rows)))
        ax.set_xticklabels([r[1] for r in set_rows], rotation=35, ha="right", fontsize=7)
        ax.set_xlim(-0.6, len(set_rows) - 0.4)
        ax.set_ylabel(unit)
        ax.set_title("%s: %s" % (op, set_name), fontsize=10, loc="left")
        ax.grid(axis="y", which="both", linewidth=0.3, alpha=0.5)
        ax.legend(fontsize=7, ncol=len(backends), loc="upper right")
    if machine:
        fig.text(0.01, 0.005, machine, fontsize=7, alpha=0.7)
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_all(results, out_dir):
    """results: convkit_compare.py's results.json content. Returns the PNG paths written."""
    cycle = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
    everyone = list(dict.fromkeys(b for t in results["tables"] for b in t["backends"]))
    color_of = {b: cycle[i % len(cycle)] for i, b in enumerate(everyone)}
    paths = []
    for table in results["tables"]:
        rows = [(r["set"], "%s N%d" % (r["shape"], r["batch"]),
                 {b: (c.get("value") if isinstance(c, dict) else None)
                  for b, c in r["cells"].items()})
                for r in table["rows"]]
        backends = [b for b in table["backends"]
                    if any(values.get(b) for _, _, values in rows)]
        if not rows or not backends:
            continue
        path = os.path.join(out_dir, "%s.png" % table["op"])
        plot_op(table["op"], table["unit"], table.get("peak"), rows, backends, path,
                results.get("machine", ""), color_of)
        paths.append(path)
    return paths


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", help="results.json written by convkit_compare.py")
    parser.add_argument("--out", default=None, help="output folder (default: beside results)")
    args = parser.parse_args()
    with open(args.results) as f:
        results = json.load(f)
    out_dir = args.out or os.path.dirname(os.path.abspath(args.results))
    os.makedirs(out_dir, exist_ok=True)
    for path in plot_all(results, out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
