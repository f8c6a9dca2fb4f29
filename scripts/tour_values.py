"""The numbers docs/tour.md's sentences quote, each read from the output printed beside it.

A sentence such as "it puts <!-- value row-1-4 -->0.98<!-- /value --> of its weight on ..." gets
its digits from VALUES["row-1-4"], a function of `out`, which returns the text of
docs/tour/outputs/NAME.txt. scripts/make_tour_outputs.py rewrites every value after writing the
outputs, and tests/test_tour.py checks that the page quotes exactly what these functions read,
so a sentence cannot keep a number from an older run, or from another machine.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tour  # noqa: E402
import tour_read as read  # noqa: E402


def at_least(value):
    """"0.995 or more", or "1.000: every one" when nothing is missed."""
    return "1.000: every one" if value == 1.0 else f"{value:.3f} or more"


def points(change):
    """An exact-match change as points (hundredths), as the prose counts them."""
    return f"{abs(change) * 100:.0f}"


def listing(items):
    """"a", "a and b", "a, b and c"."""
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def the_ones(out, which):
    """The rows of `which` ("k = memory @" or "v = memory @") of the two source 1s in stop 1's head."""
    return read.the_ones(out("explain-cross"), which)


def vectors(pair):
    return " and ".join("`" + " ".join(f"{x:.1f}" for x in v) + "`" for v in pair)


def row_weight(out, row, column):
    rows, cols, P = read.explain_table(out("explain-cross"), "6. P = softmax")
    return f"{P[rows.index(row), cols.index(column)]:.3f}"


def aligned_rows(out):
    """"While writing `sept` it reads `seven`, ..." for the rows of stop 6's head that read the
    English word they translate most."""
    said = [f"while writing `{written}` it reads `{word}`"
            for written, word, hit in read.aligned(out("explain-numbers"), tour.ALIGNMENT) if hit]
    text = listing(said)
    return text[0].upper() + text[1:]


def mille_heads(out):
    """Which source word each head of the last cross-attention shades darkest in the row `mille`."""
    maps = {t: m for t, m in read.heatmaps(out("attention-numbers")).items() if t.startswith("decoder layer")}
    last = max(int(t.split()[2].rstrip(",")) for t in maps)
    reads = {}
    for title, (rows, cols, shades) in maps.items():
        if int(title.split()[2].rstrip(",")) != last or "mille" not in rows:
            continue
        row = shades[rows.index("mille")]
        words = listing(f"`{cols[j]}`" for j in np.flatnonzero(row == row.max()))
        reads.setdefault(words, []).append(title.split()[-1])
    parts = [f"head{'s' if len(heads) > 1 else ''} {listing(heads)} read{'' if len(heads) > 1 else 's'} mostly {words}"
             for words, heads in reads.items()]
    return listing(parts)


def single_head_costs(out):
    return read.head_costs(out("ablate-numbers"))


def whole_costs(out, side):
    return [cost for name, cost in read.attention_costs(out("ablate-numbers")).items() if name.startswith(side)]


def pair(out):
    """The two heads stop 7 switches off together: (their names, each one's cost alone, their cost
    together), costs in exact match."""
    names = read.eval_metrics(out("eval-ablate-heads"))["ablated"].split(", ")
    alone = single_head_costs(out)
    together = read.eval_metrics(out("eval-numbers"))["exact_match"] - read.eval_metrics(out("eval-ablate-heads"))["exact_match"]
    return names, [alone[n] for n in names], together


def embeddings_pairs(out):
    """The five pairs of source words whose changes W - W_0 are most alike, with their cosines."""
    top = read.closest_pairs(out("embeddings-numbers-change"))
    return listing(f"`{sorted(p)[0]}` and `{sorted(p)[1]}` ({s:.2f})" for p, s in top)


def trained_scaling(out):
    return read.lab_scaling_trained(out("lab-scaling"))


VALUES = {
    # Stop 1.
    "copy-head": lambda out: read.line_starting(out("explain-cross"), "cross-attention, decoder layer").split("head ")[1].split(",")[0],
    "ones-keys": lambda out: vectors(the_ones(out, "k = memory @")),
    "ones-keys-cosine": lambda out: f"{read.cosine(*the_ones(out, 'k = memory @')):.2f}",
    "ones-values": lambda out: vectors(the_ones(out, "v = memory @")),
    "ones-values-cosine": lambda out: f"{read.cosine(*the_ones(out, 'v = memory @')):.2f}",
    "row-1-4": lambda out: row_weight(out, "1→4", "4"),
    # Stop 2.
    "nocausal-next": lambda out: f"{read.lab_masking(out('lab-masking'))['weight on the next position'][1]:.2f}",
    "zeroed-sum": lambda out: f"{read.lab_masking(out('lab-masking'))['zeroed sum']:.3f}",
    # Stop 3.
    "explain-params": lambda out: f"{read.parameters_total(out('trace-explain')):,}",
    "lengths-trained": lambda out: at_least(min(read.lab_lengths(out("lab-lengths"))[n][2] for n in range(2, 11))),
    "length-11": lambda out: f"{read.lab_lengths(out('lab-lengths'))[11][2]:.3f}",
    "length-1": lambda out: f"{read.lab_lengths(out('lab-lengths'))[1][2]:.3f}",
    # Stop 4.
    "context-ab": lambda out: f"{read.lab_context(out('lab-context'))[1]['memory (after the final norm)'][0]:.3f}",
    "context-ac": lambda out: f"{read.lab_context(out('lab-context'))[1]['memory (after the final norm)'][1]:.3f}",
    # Stop 5.
    "numbers-params": lambda out: f"{read.parameters_total(out('trace-numbers')):,}",
    # Stop 6.
    "aligned-rows": aligned_rows,
    "exact-match": lambda out: f"{read.eval_metrics(out('eval-numbers'))['exact_match']:.3f}",
    "exact-match-no-last-cross": lambda out: f"{read.eval_metrics(out('eval-ablate-cross'))['exact_match']:.3f}",
    # Stop 7.
    "mille-heads": mille_heads,
    "costliest-head": lambda out: "`" + max(single_head_costs(out).items(), key=lambda item: item[1])[0] + "`",
    "costliest-points": lambda out: points(max(single_head_costs(out).values())),
    "free-heads": lambda out: str(sum(c <= 0.005 for c in single_head_costs(out).values())),
    "decoder-first-cost": lambda out: points(whole_costs(out, "decoder.layers.0.self_attn")[0]),
    "encoder-costs": lambda out: listing(points(c) for c in whole_costs(out, "encoder")),
    "pair-heads": lambda out: listing(n.split(".head")[1] for n in pair(out)[0]),
    "pair-sum": lambda out: " + ".join(f"{100 * c:.1f}" for c in pair(out)[1]) + f" = {100 * sum(pair(out)[1]):.1f}",
    "pair-together": lambda out: f"{100 * pair(out)[2]:.1f}",
    "numbers-params-8-heads": lambda out: f"{read.parameters_total(out('trace-numbers-8-heads')):,}",
    # Stop 9.
    "lowrank-miss-1": lambda out: read.line_starting(out("lab-lowrank"), "distance |A - A_1|").rsplit(": ", 1)[1],
    "lowrank-miss-2": lambda out: read.line_starting(out("lab-lowrank"), "distance |A - A_2|").rsplit(": ", 1)[1],
    # Stop 10.
    "saturated-128": lambda out: f"{read.lab_scaling_untrained(out('lab-scaling'))[128, False]['rows > 0.99']:.0%}",
    "grad-ratio-128": lambda out: f"{read.lab_scaling_untrained(out('lab-scaling'))[128, True]['softmax grad'] / read.lab_scaling_untrained(out('lab-scaling'))[128, False]['softmax grad']:.0f}",
    "trained-std-range": lambda out: (f"{min(r['std'][1] for r in trained_scaling(out)[0].values()):.1f} to "
                                      f"{max(r['std'][1] for r in trained_scaling(out)[0].values()):.1f}"),
    "no-factor-exact": lambda out: f"exact match {trained_scaling(out)[1][1]:.3f} against {trained_scaling(out)[1][0]:.3f}",
    "embeddings-chance": lambda out: f"{read.embeddings_change(out('embeddings-numbers-change'))[2]:.2f}",
    "embeddings-pairs": embeddings_pairs,
}
