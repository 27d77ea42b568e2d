"""The study's report: ``results.md`` (markdown tables), PNG figures and progress lines.

:func:`render` rebuilds the report from a ``results.json`` written by
:func:`aprnb.study.reproduce.reproduce`. The figures need matplotlib (the
``plot`` extra); without it they are skipped with a message.
"""
import json
import os
import time

from tqdm.auto import tqdm

#: The APR paper's Gowalla numbers (its own preprocessing and time-based
#: leave-one-out split, so they frame ours rather than match them), as
#: ``docs/apr.md`` of the shared references records them; the paper's CDAE and IRGAN
#: rows are not among them. Its text: AMF beats NeuMF by 2.9% and IRGAN by 5.9%
#: (over its three data sets).
PAPER_GOWALLA = {"accuracy": {"ItemPop": (0.1560, 0.0428), "MF-BPR": (0.5072, 0.1878),
                              "NeuMF": (0.5642, 0.2138), "AMF": (0.5763, 0.2212)},
                 "robustness": {"MF-BPR": (-0.263, -0.530, -0.780),
                                "AMF": (-0.029, -0.132, -0.292)}}


def log(msg):
    """A time-stamped progress line that does not break the progress bars."""
    tqdm.write(time.strftime("%H:%M:%S ") + msg)


def _pct(x):
    return f"{x:+.1%}"


def _r4(d):
    return "{" + ", ".join(f"{k}: {v:.4f}" for k, v in d.items()) + "}"


# ---------------------------------------------------------------------------------------
# markdown
# ---------------------------------------------------------------------------------------
def _ms(s, digits=4):
    """``mean ± sd [min, max]`` of a seed summary (a dict of ``over_seeds``)."""
    if s["n"] == 1:
        return f"{s['mean']:.{digits}f}"
    return (f"{s['mean']:.{digits}f} ± {s['sd']:.{digits}f} "
            f"[{s['min']:.{digits}f}, {s['max']:.{digits}f}]")


def _names(label, k):
    return (f"hr@{k}", f"ndcg@{k}") if label == "loo" else (f"recall@{k}", f"ndcg@{k}")


def _accuracy(r, label, p):
    """The accuracy section of one protocol: selection, the seeds' table, paper's numbers."""
    m = p["metric"]
    k = m.split("@")[1]
    names = _names(label, k)
    sel = p["selection"]
    what = ("leave-one-out, full ranking" if label == "loo"
            else "holdout split of the files, full ranking")
    L = [f"### Accuracy, {label} ({what})", "",
         f"MF-BPR {p['epochs']} epochs, then MF-BPR, AMF, APR with random noise or VAT "
         f"{p['apr_epochs']} more, from the same MF-BPR, for each of {len(p['seeds'])} "
         f"training seeds ({', '.join(map(str, p['seeds']))}). Selected on validation "
         f"(first seed): MF-BPR reported after {sel['bpr_epochs']} epochs "
         f"({_r4(sel['val_bpr'])}), AMF eps = {sel['eps']} ({_r4(sel['val_amf'])}), VAT "
         f"eps = {sel['vat']['eps']} ({_r4(sel['val_vat'])}); validation {m}.", ""]
    if sel.get("systems"):
        L += ["The other systems, chosen on the same validation split: " + "; ".join(
            f"{name}: {settings_label(c['params'])} ({_r4(c['val'])})"
            for name, c in sel["systems"].items()) + ".", ""]
    bad = collapsed(sel)
    if bad:
        L += ["Collapsed on validation (below half of the best candidate of the same model, "
              "so training failed rather than lost narrowly): " + "; ".join(
                  f"{name} {cand} ({v:.4f})" for name, cand, v in bad) + ".", ""]
    L += ["Mean ± sd [min, max] over the seeds (n = seeds where it differs from the "
          "number above):", ""]
    paper = PAPER_GOWALLA["accuracy"] if label == "loo" and r["name"] == "gowalla" else None
    head = f"| model | {names[0].upper()} | {names[1].upper()} |"
    pop = f"| ItemPop (no seed) | {p['itempop'][names[0]]:.4f} | {p['itempop'][names[1]]:.4f} |"
    if paper is not None:
        head += " paper's Gowalla (HR / NDCG) |"
        pop += f" {_paper(paper, 'ItemPop')} |"
    L += [head, "|---|---|---|" + ("---|" if paper is not None else ""), pop]
    n = len(p["seeds"])
    for name, v in p["test"].items():
        note = "" if v[names[0]]["n"] == n else f" (n = {v[names[0]]['n']})"
        row = f"| {name}{note} | {_ms(v[names[0]])} | {_ms(v[names[1]])} |"
        L.append(row + (f" {_paper(paper, name)} |" if paper is not None else ""))
    L.append("")
    if paper is not None:
        L += ["The paper's numbers come from its own Gowalla preprocessing and time-based "
              "leave-one-out split, one run each; they frame ours rather than match them. "
              "Its CDAE and IRGAN rows are not in this project's references (docs/apr.md); "
              "its text reports AMF ahead of NeuMF by 2.9% and of IRGAN by 5.9%.", ""]
    return L + _paired(label, p, names)


def collapsed(sel, ratio=0.5):
    """``[(model, candidate, value)]`` of the validation runs of a selection ``sel`` that
    scored below ``ratio`` times the best candidate of the same model."""
    groups = {"MF-BPR": {f"{e} epochs": v for e, v in sel["val_bpr"].items()},
              "AMF": {f"eps={e}": v for e, v in sel["val_amf"].items()},
              "VAT": {f"eps={e}": v for e, v in sel["val_vat"].items()}}
    groups.update({name: c["val"] for name, c in sel.get("systems", {}).items()})
    return [(name, cand, v) for name, vals in groups.items() for cand, v in vals.items()
            if v < ratio * max(vals.values())]


def _p(x):
    return f"{x:.2g}"


def settings_label(params):
    """``"a=1, b=2"`` of a dict of settings ("defaults" when empty)."""
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "defaults"


def _paper(paper, name):
    """The paper's ``HR / NDCG`` of a model of our table, or a dash."""
    return f"{paper[name][0]:.4f} / {paper[name][1]:.4f}" if name in paper else "-"


def _paired(label, p, names):
    """The paired comparisons: per-seed gains and t-test, per-user interval and tests."""
    L = ["Paired comparisons (B against A). *Over seeds*: B/A - 1 per seed, its mean "
         "[min, max], the seeds where B wins, and a paired t-test of the seeds' values. "
         "*Over users*: each user's metric averaged over the seeds, then B - A: mean "
         "difference with a 95% bootstrap interval, Wilcoxon signed-rank and paired t-test.",
         "", "| A | B | metric | gain over seeds [range] | B wins | t-test (seeds) | "
         "difference over users [95% CI] | Wilcoxon p | t-test p |",
         "|---|---|---|---|---|---|---|---|---|"]
    for row in p["paired"]:
        for m in names:
            s, u = row[m]["seeds"], row[m]["users"]
            L.append(f"| {row['a']} | {row['b']} | {m} | {_pct(s['mean_gain'])} "
                     f"[{_pct(s['min_gain'])}, {_pct(s['max_gain'])}] | "
                     f"{s['n_positive']}/{s['n']} | "
                     f"{_p(s['p_ttest'])} | {u['diff']:+.4f} [{u['ci_low']:+.4f}, "
                     f"{u['ci_high']:+.4f}] | {_p(u['p_wilcoxon'])} | {_p(u['p_ttest'])} |")
    return L + [""]


BEYOND = ("coverage", "gini", "arp", "aplt", "novelty")


def _ms_short(s):
    """``mean ± sd`` in 4 significant digits (the mean alone for one seed)."""
    return f"{s['mean']:.4g}" if s["n"] == 1 else f"{s['mean']:.4g} ± {s['sd']:.2g}"


def _beyond(label, p):
    """Beyond accuracy: coverage, Gini, ARP, APLT and novelty of the top-K lists."""
    k = p["metric"].split("@")[1]
    L = [f"### Beyond accuracy, {label} (top-{k} lists; mean ± sd over seeds)", "",
         "| model | " + " | ".join(f"{b}@{k}" for b in BEYOND) + " |",
         "|---|" + "---|" * len(BEYOND),
         "| ItemPop | " + " | ".join(f"{p['itempop'][f'{b}@{k}']:.4g}" for b in BEYOND) + " |"]
    for name, v in p["test"].items():
        cells = [_ms_short(v[f"{b}@{k}"]) for b in BEYOND]
        L.append(f"| {name} | " + " | ".join(cells) + " |")
    return L + [""]


def _robustness(r, p):
    """The robustness table (leave-one-out), with the paper's Gowalla rows."""
    cells = {(c["model"], c["kind"], c["eps"], c["metric"]): c for c in p["robustness"]}
    eps = sorted({c["eps"] for c in p["robustness"]})
    n = max(c["n"] for c in p["robustness"])
    over = (f"mean ± sd over {n} seeds" if n > 1 else "one seed") + (
        "" if n == len(p["seeds"]) else f" (the first {n} of {len(p['seeds'])})")
    L = [f"### Robustness (leave-one-out): relative change under perturbation, {over}", "",
         "| model | noise | metric | " + " | ".join(f"eps={e:g}" for e in eps) + " |",
         "|---|---|---|" + "---|" * len(eps)]
    for model in dict.fromkeys(c["model"] for c in p["robustness"]):
        for kind in ("adversarial", "pgd", "random"):
            for m in ("ndcg@100 change", "hr@100 change"):
                row = [cells.get((model, kind, e, m)) for e in eps]
                if all(c is not None for c in row):
                    L.append(f"| {model} | {kind} | {m.split()[0]} | " + " | ".join(
                        _pct(c["mean"]) + (f" ± {c['sd']:.1%}" if c["n"] > 1 else "")
                        for c in row) + " |")
    if r["name"] == "gowalla":
        for mname, ch in PAPER_GOWALLA["robustness"].items():
            L.append(f"| paper's {mname} (its Gowalla) | adversarial | ndcg@100 | "
                     + " | ".join(_pct(c) for c in ch) + " |")
    L.append("")
    return L


def write_markdown(results, path, command):
    """Write ``results.md``: per data set and protocol, accuracy and robustness tables."""
    L = ["# Reproduction results", "", f"Generated by `{command}` on "
         f"{time.strftime('%Y-%m-%d %H:%M')}.", ""]
    for r in results:
        L += [f"## {r['name']} ({r['shape'][0]} users, {r['shape'][1]} items)", ""]
        for label, p in r["protocols"].items():
            L += _accuracy(r, label, p)
            L += _beyond(label, p)
            if "robustness" in p:
                L += _robustness(r, p)
        L += [f"Wall time for {r['name']}: {r['seconds'] / 60:.1f} minutes.", ""]
        for fig in r.get("figures", []):
            L += [f"![{os.path.basename(fig)}]({os.path.basename(fig)})", ""]
    with open(path, "w") as fh:
        fh.write("\n".join(L))


# ---------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------
def _plot_eps(plt, result, p, out):
    clean = [x for x in p["eps_curve"] if x["kind"] == "clean"][0]["ndcg@100"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for kind, style in (("adversarial", "o-"), ("random", "s--")):
        xs = [0.0] + [x["eps"] for x in p["eps_curve"] if x["kind"] == kind]
        ys = [clean] + [x["ndcg@100"] for x in p["eps_curve"] if x["kind"] == kind]
        ax.plot(xs, ys, style, label=f"{kind} noise")
    ax.set_xlabel("eps (per-row L2 norm of the perturbation)")
    ax.set_ylabel("NDCG@100")
    ax.set_title(f"MF-BPR under perturbation, {result['name']}")
    return _save(plt, fig, ax, os.path.join(out, f"{result['name']}_eps.png"))


def _save(plt, fig, ax, path):
    """Finish a figure (legend, layout), write it to ``path`` and close it."""
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _plot_training(plt, result, p, out):
    fig, ax = plt.subplots(figsize=(5, 3.5))
    c = p["curves"]
    ax.plot(*zip(*c["bpr"]), label="MF-BPR continued")
    ax.plot(*zip(*c["amf"]), label="switched to APR (AMF)")
    ax.axvline(c["bpr_phase_end"], color="grey", lw=0.8, ls=":")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test NDCG@100 (illustration only)")
    ax.set_title(f"BPR then APR, {result['name']}")
    return _save(plt, fig, ax, os.path.join(out, f"{result['name']}_training.png"))


def plot(result, out):
    """Draw one data set's figures into ``out``; returns their paths ([] without
    matplotlib)."""
    try:
        # Lazy: matplotlib is an optional extra, needed only for the figures.
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed (pip install 'aprnb[plot]'): figures skipped")
        return []
    p = result["protocols"].get("loo")
    if p is None:
        return []
    eps = [_plot_eps(plt, result, p, out)] if "eps_curve" in p else []
    return eps + [_plot_training(plt, result, p, out)]


def render(json_path, command):
    """Re-render ``results.md`` (and the figures) from a ``results.json`` of a run."""
    out = os.path.dirname(os.path.abspath(json_path))
    with open(json_path) as fh:
        results = json.load(fh)
    for res in results:
        res["figures"] = plot(res, out)
    write_markdown(results, os.path.join(out, "results.md"), command)
    return results
