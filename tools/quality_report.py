#!/usr/bin/env python3
"""The paper's four PostNAS tables from a `jet postnas run` output folder, as Markdown and PNG plots.

Usage: quality_report.py RUN_DIR --out DEST [--bench-dir DIR]

Reads from RUN_DIR (each optional): place-*.json (`jet postnas place`), select.json, hwsearch.json,
eval.json (`jet eval --json` / the run's eval step), config.json and budget.json (scripts/gpu_postnas.sh's
record of the run's config and budget), and from --bench-dir (default RUN_DIR) bench-<model>-<context>.json
files of `jet bench --json`. Writes DEST/tables.md with
  1. placement: per-layer importance per objective, the chosen and the uniform placements (paper Fig. 3),
  2. block selection (paper Table 1), 3. hardware-aware search (paper Table 2),
  4. final: the teacher and the hybrids on held-out ppl, the benchmarks, retrieval and decode speed,
and placement.png, select.png, hwsearch.png, final.png (each only when its input exists). A missing input
makes its table say "not run"; an unreadable or malformed input is a one-line error (exit 2) and nothing
is written. Needs matplotlib (the project's .venv)."""
import argparse
import glob
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from plot_placement import heatmap, objective_label  # noqa: E402

NOT_RUN = "not run"


class Bad(Exception):
    pass


def load(path):
    """The parsed JSON of path, None when it does not exist; Bad when it cannot be read or parsed."""
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise Bad(f"{path}: not readable JSON ({str(e).splitlines()[0]})")


def guarded(path, fn, *args):
    """fn(*args); a missing key or a wrong type in the file's content becomes Bad naming the file."""
    try:
        return fn(*args)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise Bad(f"{path}: unexpected content ({type(e).__name__}: {e})")


def num(x, fmt="{:.4f}"):
    return "-" if x is None else fmt.format(x)


def pct(x):
    return "-" if x is None else f"{100 * x:.1f}"


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def placement_str(p):
    return f"full {p['full']} swa {p['swa']}"


def ctx_label(n):
    return f"{n // 1024}K" if n % 1024 == 0 else str(n)


# ---- 1. placement ---------------------------------------------------------------------------------

def place_columns(r, L):
    """One place result -> (its header labels, its columns of per-layer gains, its summary row)."""
    if len(r["full_gain"]) != L or len(r["swa_gain"]) != L:
        raise ValueError(f"{len(r['full_gain'])} full / {len(r['swa_gain'])} swa gains, the first file has {L} layers")
    label = objective_label(r)
    header, cols = [f"{label} full"], [r["full_gain"]]
    if any(v is not None for v in r["swa_gain"]):
        header.append(f"{label} swa")
        cols.append(r["swa_gain"])
    for c in cols:
        [num(v) for v in c]
    uni = r.get("uniform")
    summary = [label, num(r["all_linear"]), num(r["teacher"]), placement_str(r["best"]), num(r["top"][0]["score"]),
               placement_str(uni["placement"]) if uni else "-", num(uni["score"]) if uni else "-", r["evaluations"]]
    return header, cols, summary


def placement_section(results, finetuned):
    """results: [(path, place JSON)] -> markdown."""
    L = guarded(results[0][0], lambda: len(results[0][1]["full_gain"]))
    header, cols, summaries = ["layer"], [], []
    for path, r in results:
        h, c, sm = guarded(path, place_columns, r, L)
        header += h
        cols += c
        summaries.append(sm + ["yes" if r["objective"] in finetuned else ""])
    s = ("Importance of each layer: the objective's gain over the all-linear network when that layer alone keeps "
         "full attention (\"full\"), and when it is added as sliding-window attention to the best full placement "
         "(\"swa\"). Higher is better for every objective (kl: −KL to the teacher).\n\n")
    s += md_table(header, [[l] + [num(c[l], "{:+.4f}") for c in cols] for l in range(L)])
    s += "\n" + md_table(["objective", "all-linear", "teacher", "chosen placement", "score", "uniform placement", "score",
                          "evaluations", "finetuned"], summaries)
    return s


# ---- 2. block selection ---------------------------------------------------------------------------

def select_section(sel):
    o = sel["options"]
    s = (f"Every block type distilled on {placement_str(sel['placement'])} with the same budget: {o['steps']} steps x "
         f"{o['batch']} x {o['seq_len']} tokens, seed {o['seed']}; held-out: {o['eval_windows']} windows of "
         f"{o['eval_seq_len']} tokens.\n\n")
    rows = []
    for b in sel["blocks"]:
        rows.append([b["type"], f"{b['params_per_layer'] / 1e6:.3f}", f"{b['state_bytes_per_layer'] / 1024:.1f}",
                     num(b["train_loss_last10"]), num(b["heldout_kl"]), num(b.get("heldout_ppl"), "{:.3f}"),
                     f"{b['tokens_per_s']:.0f}"])
    return s + md_table(["block", "params/layer (M)", "state KB/layer", "train loss (last 10)", "held-out KL",
                         "held-out ppl", "train tok/s"], rows)


# ---- 3. hardware-aware search ---------------------------------------------------------------------

def hwsearch_section(hw):
    o = hw["options"]
    s = (f"{o['linear_type']} blocks at a fixed state of {hw['state']} elements per layer and sequence (H·d_k·d_v), "
         f"on {placement_str(hw['placement'])}; timed on {o['device']} {o['dtype']}: one decode step at batch "
         f"{o['time_batch']}, a prefill of {o['time_len']} tokens; quality after {o['steps']} steps x {o['batch']} x "
         f"{o['seq_len']} tokens.\n\n")
    rows = []
    for c in hw["candidates"]:
        rows.append([c["heads"], c["d_k"], c["d_v"], c["heads"] * c["d_k"] * c["d_v"], f"{c['params_per_layer'] / 1e6:.3f}",
                     f"{c['decode_ms']:.4f}", f"{1e3 * o['time_len'] / c['prefill_tok_per_s']:.3f}",
                     f"{c['prefill_tok_per_s']:.0f}", num(c["train_loss_last10"]), num(c["heldout_kl"]),
                     num(c.get("heldout_ppl"), "{:.3f}")])
    return s + md_table(["heads", "d_k", "d_v", "state", "params/layer (M)", "decode ms/step", "prefill ms",
                         "prefill tok/s", "train loss", "held-out KL", "held-out ppl"], rows)


# ---- 4. final -------------------------------------------------------------------------------------

def final_rows(ev, bench):
    """ev: eval.json (or None), bench: {model name: {context: bench JSON}} -> (model names, rows, plot data).
    Each row: (label, [cell per model], kind) with kind in acc | ppl | speed | other for the plot."""
    models = [m["name"] for m in ev["models"]] if ev else []
    models += [n for n in bench if n not in models]
    rows = []

    def add(label, values, kind, fmt):
        if any(v is not None for v in values):
            rows.append((label, values, kind, [fmt(v) for v in values]))

    mets = {m["name"]: m["metrics"] for m in ev["models"]} if ev else {}
    get = lambda name, *keys: _dig(mets.get(name), keys)  # noqa: E731
    if ev:
        add("parameters (M)", [m["parameters"] / 1e6 for m in ev["models"]] + [None] * (len(models) - len(ev["models"])),
            "other", lambda v: num(v, "{:.1f}"))
        add("held-out ppl", [get(n, "ppl", "ppl") for n in models], "ppl", lambda v: num(v, "{:.3f}"))
        tasks = [t for t in ev["settings"]["tasks"] if t not in ("ppl",)]
        mc_names = []
        for t in tasks:
            first = next((mets[n][t] for n in mets if t in mets[n]), None)
            if t == "mc":
                add(f"mc {first['task']} acc (%)", [get(n, "mc", "accuracy") for n in models], "acc", pct)
            elif t == "passkey":
                for i, p in enumerate(first):
                    add(f"passkey {ctx_label(p['length'])} (%)", [_at(get(n, "passkey"), i, "accuracy") for n in models],
                        "acc", pct)
            elif isinstance(first, list):  # a RULER task: [{length, score, samples}]
                for i, p in enumerate(first):
                    add(f"{t} {ctx_label(p['length'])} (%)", [_at(get(n, t), i, "score") for n in models], "acc", pct)
            elif isinstance(first, dict) and "acc" in first:  # a benchmark
                if "ppl" in first:  # LAMBADA: greedy acc and ppl
                    add(f"{t} acc (%)", [get(n, t, "acc") for n in models], "acc", pct)
                    add(f"{t} ppl", [get(n, t, "ppl") for n in models], "other", lambda v: num(v, "{:.2f}"))
                else:
                    metric = "acc_norm" if "acc_norm" in first else "acc"
                    add(f"{t} {metric} (%)", [get(n, t, metric) for n in models], "acc", pct)
                    mc_names.append((t, metric))
        if mc_names:
            avg = []
            for n in models:
                vals = [get(n, t, m) for t, m in mc_names]
                avg.append(None if None in vals else sum(vals) / len(vals))
            add(f"MC average (%) over {len(mc_names)}", avg, "acc", pct)
    for ctx in sorted({c for per in bench.values() for c in per}):
        runs = [_dig(bench.get(n), (ctx,)) for n in models]
        add(f"decode tok/s @ {ctx_label(ctx)} (batch)", [r and r["decode_tok_per_s"] for r in runs], "speed",
            lambda v: "-" if v is None else f"{v:.0f}")
        if rows and rows[-1][2] == "speed":  # the batch beside each speed
            rows[-1][3][:] = [c if r is None else f"{c} ({r['batch']})" for c, r in zip(rows[-1][3], runs)]
    return models, rows


def _dig(x, keys):
    for k in keys:
        if x is None:
            return None
        x = x.get(k) if isinstance(x, dict) else None
    return x


def _at(lst, i, key):
    return lst[i][key] if lst is not None and i < len(lst) else None


def final_section(models, rows, ev, bench):
    s = ""
    if ev:
        st = ev["settings"]
        s += (f"eval.json: {st['device']} {st['dtype']}; held-out ppl on {st['ppl_windows']} windows of {st['seq_len']} "
              f"tokens; benchmarks: {'all items' if st.get('limit', 0) == 0 else str(st['limit']) + ' items each'}, "
              "acc_norm where the harness reports it, else acc; MC average = mean of those (LAMBADA not included); "
              f"retrieval: {st['samples']} samples per length.\n")
    runs = sorted({(j["machine"], j["device"], j["dtype"], j["gen"], bool(j["synthetic_cache"]), bool(j["max_batch"]))
                   for per in bench.values() for j in per.values()})
    for machine, device, dtype, gen, synthetic, max_batch in runs:
        s += (f"decode tok/s: `jet bench` on {machine} ({device} {dtype}), {gen} generated tokens per sequence"
              f"{', synthetic cache of the context' if synthetic else ', prefilled context'}, batch in brackets"
              f"{' (the largest that fits)' if max_batch else ''}.\n")
    s += "\n" + md_table(["metric"] + models, [[label] + cells for label, _, _, cells in rows])
    by = {label: values for label, values, _, _ in rows}
    ppl = by.get("held-out ppl")
    avg = next((v for k, v in by.items() if k.startswith("MC average")), None)
    if ev and len(models) > 1:
        s += "\nAgainst the teacher (first column):\n"
        for i, n in enumerate(models[1:], 1):
            parts = []
            if ppl and ppl[0] and ppl[i]:
                parts.append(f"held-out ppl x{ppl[i] / ppl[0]:.2f}")
            if avg and avg[0] is not None and avg[i] is not None:
                parts.append(f"MC average {100 * (avg[i] - avg[0]):+.1f} points")
            if parts:
                s += f"- {n}: " + ", ".join(parts) + "\n"
    return s


def read_bench(paths, names):
    """{model name: {context: JSON}}; names: eval.json's {path: name}. A file's model is matched to an eval.json
    model by its path, its base name or the <model> of the file name; others keep their base name."""
    known = set(names.values())
    out = {}
    for p in paths:
        j = load(p)

        def place(j=j, p=p):
            model, ctx = j["model"], int(j["context"])
            float(j["decode_tok_per_s"]), int(j["batch"])
            base = os.path.basename(model.rstrip("/"))
            stem = os.path.basename(p)[len("bench-"):-len(".json")].rsplit("-", 1)[0]
            name = names.get(model) or (base if base in known else stem if stem in known else base)
            out.setdefault(name, {})[ctx] = j
        guarded(p, place)
    return out


# ---- plots ----------------------------------------------------------------------------------------

def plots(dest, places, sel, hw, models, rows):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    written = []

    def save(fig, name):
        fig.tight_layout()
        path = os.path.join(dest, name)
        fig.savefig(path + ".tmp.png", dpi=120)
        plt.close(fig)
        os.replace(path + ".tmp.png", path)
        written.append(name)

    if places:
        heatmap([r for _, r in places], os.path.join(dest, "placement.png"))
        written.append("placement.png")
    if sel:
        blocks = sel["blocks"]
        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
        a.bar([x["type"] for x in blocks], [x["heldout_kl"] for x in blocks], color="tab:blue")
        a.set_ylabel("held-out KL to the teacher (lower is better)")
        b.bar([x["type"] for x in blocks], [x["tokens_per_s"] for x in blocks], color="tab:green")
        b.set_ylabel("training tok/s")
        fig.suptitle("block selection (equal budget)")
        save(fig, "select.png")
    if hw:
        c = hw["candidates"]
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        ax.scatter([x["decode_ms"] for x in c], [x["heldout_kl"] for x in c])
        for x in c:
            ax.annotate(f"H{x['heads']} k{x['d_k']} v{x['d_v']}", (x["decode_ms"], x["heldout_kl"]), fontsize=8,
                        xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(f"decode ms/step (batch {hw['options']['time_batch']})")
        ax.set_ylabel("held-out KL (lower is better)")
        ax.set_title(f"hardware-aware search at state {hw['state']}")
        save(fig, "hwsearch.png")
    panels = [(k, [r for r in rows if r[2] == k]) for k in ("acc", "ppl", "speed")]
    panels = [(k, rs) for k, rs in panels if rs]
    if panels:
        fig, axes = plt.subplots(1, len(panels), figsize=(max(7, 1.1 * len(panels[0][1]) + 4) + 3 * (len(panels) - 1), 4.5),
                                 gridspec_kw={"width_ratios": [max(1, len(rs)) for _, rs in panels]}, squeeze=False)
        titles = {"acc": "accuracy (%)", "ppl": "held-out perplexity (lower is better)", "speed": "decode tok/s"}
        w = 0.8 / max(1, len(models))
        for ax, (kind, rs) in zip(axes[0], panels):
            for i, m in enumerate(models):
                vals = [(r[1][i] or 0) * (100 if kind == "acc" else 1) for r in rs]
                ax.bar([x + i * w for x in range(len(rs))], vals, w, label=m)
            ax.set_xticks([x + w * (len(models) - 1) / 2 for x in range(len(rs))],
                          [r[0].replace(" (%)", "").replace(" (batch)", "") for r in rs], rotation=45, ha="right",
                          fontsize=8)
            ax.set_title(titles[kind])
        axes[0][0].legend(fontsize=8)
        save(fig, "final.png")
    return written


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--out", required=True, help="destination folder (made if missing)")
    ap.add_argument("--bench-dir", help="folder of bench-<model>-<context>.json files (default: RUN_DIR)")
    a = ap.parse_args()
    try:
        if not os.path.isdir(a.run_dir):
            raise Bad(f"{a.run_dir}: no such directory")
        cfg, budget = load(os.path.join(a.run_dir, "config.json")), load(os.path.join(a.run_dir, "budget.json"))
        place_paths = sorted(glob.glob(os.path.join(a.run_dir, "place-*.json")))
        order = guarded("config.json", lambda: list(cfg["place"]["objectives"])) if cfg and "place" in cfg else []
        place_paths.sort(key=lambda p: (order.index(os.path.basename(p)[6:-5]) if os.path.basename(p)[6:-5] in order
                                        else len(order), p))
        places = [(p, load(p)) for p in place_paths]
        finetuned = guarded("config.json", lambda: cfg["place"].get("finetune", order[:1])) if order else []
        sel_path, hw_path, ev_path = (os.path.join(a.run_dir, f) for f in ("select.json", "hwsearch.json", "eval.json"))
        sel, hw, ev = load(sel_path), load(hw_path), load(ev_path)
        if not order and ev:  # no config.json: the hybrids the run made are named hybrid-<objective>
            finetuned = guarded(ev_path, lambda: [m["name"][len("hybrid-"):] for m in ev["models"]
                                                  if m["name"].startswith("hybrid-")])
        bench_paths = sorted(glob.glob(os.path.join(a.bench_dir or a.run_dir, "bench-*-*.json")))

        md = [f"# PostNAS quality report: {os.path.abspath(a.run_dir)}\n"]
        if cfg or budget:
            md.append("## Run\n")
            if cfg:
                def run_lines():
                    lines = [f"teacher `{cfg['teacher']}`, {cfg.get('device', 'cpu')} {cfg.get('dtype', 'fp32')}, "
                             f"budget {json.dumps(cfg.get('budget', {}))}"]
                    for k in ("supernet", "finetune"):
                        if k in cfg and all(x in cfg[k] for x in ("steps", "batch", "seq_len")):
                            c = cfg[k]
                            lines.append(f"{k}: {c['steps']} steps x {c['batch']} x {c['seq_len']} = "
                                         f"{c['steps'] * c['batch'] * c['seq_len'] / 1e6:.2f} M tokens")
                    return lines
                md += [f"- {x}" for x in guarded("config.json", run_lines)]
            if budget:
                md += guarded("budget.json", lambda: [f"- budget: {k} = {v}" for k, v in budget.items()])
            md.append("")
        md.append("## 1. Placement search (paper Fig. 3)\n")
        if places:
            md.append(placement_section(places, finetuned))
            md.append("![placement](placement.png)\n")
        else:
            md.append(NOT_RUN + " (no place-*.json)\n")
        md.append("## 2. Block selection (paper Table 1)\n")
        md.append(guarded(sel_path, select_section, sel) + "\n![select](select.png)\n" if sel else NOT_RUN + " (no select.json)\n")
        md.append("## 3. Hardware-aware search (paper Table 2)\n")
        md.append(guarded(hw_path, hwsearch_section, hw) + "\n![hwsearch](hwsearch.png)\n" if hw else
                  NOT_RUN + " (no hwsearch.json)\n")
        md.append("## 4. Teacher vs hybrids (paper Table 3)\n")
        bench = read_bench(bench_paths, guarded(ev_path, lambda: {m["path"]: m["name"] for m in ev["models"]}) if ev else {})
        models, rows = guarded(ev_path, final_rows, ev, bench)
        if rows:
            md.append(guarded(ev_path, final_section, models, rows, ev, bench))
            md.append("![final](final.png)\n")
        else:
            md.append(NOT_RUN + " (no eval.json, no bench-*.json)\n")
        if ev is None and rows:
            md.append("eval: " + NOT_RUN + " (no eval.json)\n")
        if not bench_paths and rows:
            md.append("decode speed: " + NOT_RUN + " (no bench-*.json)\n")

        os.makedirs(a.out, exist_ok=True)
        written = guarded("plots", plots, a.out, places, sel, hw, models, rows)
    except Bad as e:
        sys.stderr.write(f"quality_report: {e}\n")
        sys.exit(2)
    tmp = os.path.join(a.out, "tables.md.tmp")
    with open(tmp, "w") as f:
        f.write("\n".join(md))
    os.replace(tmp, os.path.join(a.out, "tables.md"))
    print(f"wrote {os.path.join(a.out, 'tables.md')}" + (f" and {', '.join(written)}" if written else ""))


if __name__ == "__main__":
    main()
