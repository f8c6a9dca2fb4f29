"""Reading docs/lowrank.md's experiment tables back into numbers, and the numbers its prose quotes.

scripts/lora_experiment.py and scripts/heads_experiment.py write their tables between markers in
docs/lowrank.md (or, with --out, into a file of their own). The sentences under them quote those
tables through `<!-- value NAME -->` markers that VALUES fills (`python scripts/lowrank_read.py`
rewrites them; the experiment scripts do it after writing their tables), and scripts/claims.py
checks the statements that must hold whatever the run, reading fresh runs' tables with the same
functions.
"""

import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tour_read import VALUE, fill_values as fill_markers  # noqa: E402,F401  (VALUE: the tests read the markers with it)

REPO_ROOT = Path(__file__).resolve().parents[1]
DOC = REPO_ROOT / "docs" / "lowrank.md"


def section(text, marker):
    """What lies between <!-- BEGIN marker --> and <!-- END marker -->."""
    begin, end = f"<!-- BEGIN {marker} -->", f"<!-- END {marker} -->"
    if begin not in text or end not in text:
        raise ValueError(f"no {begin} ... {end}")
    return text.split(begin, 1)[1].split(end, 1)[0]


def tables(text):
    """Every markdown table of `text`, as a list of rows, each a list of its cells' text."""
    found, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if not all(set(c) <= set("-:") for c in cells):
                current.append(cells)
        elif current:
            found.append(current)
            current = []
    return found


def number(cell):
    return float(cell.replace(",", "").replace("%", ""))


def lora(text):
    """scripts/lora_experiment.py's tables: {"runs": {label: {...}}, "spectra": {matrix: {...}},
    "truncation": {k: (test exact match, test token accuracy)}}."""
    runs_table, spectra_table, truncation_table = tables(text)[:3]
    runs = {}
    for label, params, share, steps, test, seconds, ms, kb in runs_table[1:]:
        reached = [int(s) if s.strip().isdigit() else None for s in steps.split(" / ")]
        runs[label] = dict(params=int(number(params)), share=number(share), steps=reached, test=number(test),
                           seconds=number(seconds), ms=number(ms), kb=number(kb))
    spectra = {}
    for matrix, shape, ratio, first, e1, e4, e8, r90, r99 in spectra_table[1:]:
        if matrix.startswith("*"):  # the random matrices for scale, one per shape
            matrix = f"{matrix} {shape}"
        spectra[matrix] = dict(shape=shape, energy4=number(e4), energy8=number(e8), r90=int(r90), r99=int(r99))
    truncation = {}
    for k, exact, token in truncation_table[1:]:
        truncation["full" if k.startswith("full") else int(k)] = (number(exact), number(token))
    return dict(runs=runs, spectra=spectra, truncation=truncation)


def heads(text):
    """scripts/heads_experiment.py's table: {H: {"params", "valid": {step: [per seed]}, "test",
    "sharpness": [per decoder layer], "seconds"}}."""
    table = tables(text)[0]
    header = table[0]
    steps = [int(h.rsplit(" ", 1)[1]) for h in header if h.startswith("valid exact match, step")]
    found = {}
    for row in table[1:]:
        H, _, params, *rest = row
        valid = {s: [float(x) for x in cell.split(" / ")] for s, cell in zip(steps, rest[:len(steps)])}
        test, sharp, seconds = rest[len(steps):]
        found[int(H)] = dict(params=int(number(params)), valid=valid, test=float(test),
                             sharpness=[float(x) for x in sharp.split(", ")], seconds=float(seconds))
    return found


def lora_doc(text=None):
    return lora(section(text or DOC.read_text(), "lora_experiment"))


def heads_doc(text=None):
    return heads(section(text or DOC.read_text(), "heads_experiment"))


def step_range(runs, labels):
    steps = [s for label in labels for s in runs[label]["steps"]]
    return f"{min(steps)} to {max(steps)}" if min(steps) != max(steps) else f"{min(steps)}"


def spread(values, fmt="{:.3f}"):
    lo, hi = min(values), max(values)
    return fmt.format(lo) if lo == hi else f"{fmt.format(lo)} to {fmt.format(hi)}"


def attention_and_ff(spectra):
    return {m: v for m, v in spectra.items() if not m.startswith("*")}


LORA_RANKS = ["LoRA r=4", "LoRA r=8", "LoRA r=16"]

# name: function of (lora results, heads results) -> the text the prose quotes.
VALUES = {
    "lora-tests": lambda L, H: spread([r["test"] for r in L["runs"].values()]),
    "rank-1-params": lambda L, H: f"{L['runs']['LoRA r=1']['params']:,}",
    "rank-1-share": lambda L, H: f"{L['runs']['LoRA r=1']['share']:.1f}%",
    "rank-1-steps": lambda L, H: step_range(L["runs"], ["LoRA r=1"]),
    "rank-4-16-steps": lambda L, H: step_range(L["runs"], LORA_RANKS),
    "full-steps": lambda L, H: step_range(L["runs"], ["full fine-tuning"]),
    "full-1e-3-steps": lambda L, H: step_range(L["runs"], ["full fine-tuning, lr 1e-3"]),
    "ms-per-step": lambda L, H: spread([r["ms"] for r in L["runs"].values()], "{:.0f}"),
    "rank-1-kb": lambda L, H: f"{L['runs']['LoRA r=1']['kb']:.0f} KB",
    "rank-4-kb": lambda L, H: f"{L['runs']['LoRA r=4']['kb']:.0f} KB",
    "full-mb": lambda L, H: f"{L['runs']['full fine-tuning']['kb'] / 1024:.1f} MB",
    "adapter-shares": lambda L, H: spread([L["runs"][f"LoRA r={r}"]["share"] for r in (1, 4)], "{:.0f}%"),
    "qv-test": lambda L, H: f"{L['runs']['LoRA r=4, W_q W_v only']['test']:.3f}",
    "qv-steps": lambda L, H: step_range(L["runs"], ["LoRA r=4, W_q W_v only"]),
    "rank-4-steps": lambda L, H: step_range(L["runs"], ["LoRA r=4"]),
    "qv-params": lambda L, H: f"{L['runs']['LoRA r=4, W_q W_v only']['params']:,}",
    "update-r90": lambda L, H: spread([v["r90"] for v in attention_and_ff(L["spectra"]).values()], "{:d}"),
    "update-r90-median": lambda L, H: f"{int(np.median([v['r90'] for v in attention_and_ff(L['spectra']).values()]))}",
    "update-energy4": lambda L, H: spread([100 * v["energy4"] for v in attention_and_ff(L["spectra"]).values()], "{:.0f}%"),
    "update-energy8": lambda L, H: spread([v["energy8"] for v in attention_and_ff(L["spectra"]).values()], "{:.2f}"),
    "update-dropped8": lambda L, H: spread([100 * (1 - v["energy8"]) for v in attention_and_ff(L["spectra"]).values()], "{:.0f}%"),
    "truncation-1": lambda L, H: f"{L['truncation'][1][0]:.0%}",
    "truncation-2": lambda L, H: f"{L['truncation'][2][0]:.0%}",
    "truncation-4": lambda L, H: f"{L['truncation'][4][0]:.0%}",
    "truncation-8": lambda L, H: f"{L['truncation'][8][0]:.0%}",
    "heads-params": lambda L, H: f"{H[1]['params']:,}",
    "heads-step-300": lambda L, H: f"{min(min(h['valid'][300]) for h in H.values()):.3f}",
    "one-head-step-200": lambda L, H: spread(H[1]["valid"][200]),
    "more-heads-step-200": lambda L, H: spread([v for n, h in H.items() if n > 1 for v in h["valid"][200]]),
    "heads-tests": lambda L, H: spread([h["test"] for h in H.values()]),
    "heads-winner": lambda L, H: str(max(H, key=lambda n: np.mean(H[n]["valid"][max(H[n]["valid"])]))),
    "one-head-sharpness": lambda L, H: spread(H[1]["sharpness"], "{:.2f}"),
    "more-heads-sharpness": lambda L, H: spread([max(h["sharpness"]) for n, h in H.items() if n > 1]
                                                + [min(h["sharpness"]) for n, h in H.items() if n > 1], "{:.2f}"),
    "heads-seconds": lambda L, H: spread([h["seconds"] for h in H.values()], "{:.0f}"),
}


def fill_values(doc=DOC):
    """Rewrite every `<!-- value NAME -->` of docs/lowrank.md from its own tables; returns how many."""
    text = doc.read_text()
    L, H = lora_doc(text), heads_doc(text)
    filled, count = fill_markers(text, lambda name: VALUES[name](L, H))
    doc.write_text(filled)
    return count


if __name__ == "__main__":
    sys.exit(print(f"filled {fill_values()} values of {DOC.relative_to(REPO_ROOT)}"))
