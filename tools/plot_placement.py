#!/usr/bin/env python3
"""Heat map of PostNAS placement searches (the paper's per-layer importance figure): one row per
`jet postnas place` result (objective), one column per layer; colour = the objective's gain when that
layer alone keeps full attention, scaled to [0, 1] per row; the chosen full (F) and sliding-window (S)
layers of the best placement are marked. Usage: plot_placement.py --out FILE.png place-*.json
(tools/quality_report.py imports heatmap() and objective_label())."""
import argparse
import json
import math
import os
import sys


def objective_label(r):
    """A place result's objective, with its task where it has one: "kl", "mc (arc_easy)", "niah"."""
    task = (r.get("options") or {}).get("mc_task", "holdout-cloze")
    return r["objective"] + (f" ({task})" if r["objective"] == "mc" and task != "holdout-cloze" else "")


def heatmap(results, out):
    """Draws the heat map of parsed place results into the PNG `out` (written atomically)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows, labels, marks = [], [], []
    for r in results:
        g = [float("nan") if v is None else v for v in r["full_gain"]]
        finite = [v for v in g if not math.isnan(v)]
        lo, hi = (min(finite), max(finite)) if finite else (0.0, 0.0)
        rows.append([(v - lo) / (hi - lo) if hi > lo and not math.isnan(v) else 0.0 for v in g])
        labels.append(objective_label(r))
        best = r.get("best") or {}
        marks.append((best.get("full", []), best.get("swa", [])))
    L = len(rows[0])
    fig, ax = plt.subplots(figsize=(max(6, 0.32 * L + 1.5), 0.6 * len(rows) + 1.4))
    im = ax.imshow(rows, aspect="auto", cmap="viridis", vmin=0, vmax=1)
    for i, (full, swa) in enumerate(marks):
        for l in full:
            ax.text(l, i, "F", ha="center", va="center", color="red", fontweight="bold")
        for l in swa:
            ax.text(l, i, "S", ha="center", va="center", color="orange", fontweight="bold")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xticks(range(L), [str(l) for l in range(L)], fontsize=7)
    ax.set_xlabel("layer (F: chosen full attention, S: chosen sliding window)")
    ax.set_title("PostNAS: gain when one layer keeps full attention (scaled per objective)")
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    tmp = out + ".tmp.png"
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        sys.exit("plot_placement.py: matplotlib is not installed")
    heatmap([json.load(open(f)) for f in a.files], a.out)


if __name__ == "__main__":
    main()
