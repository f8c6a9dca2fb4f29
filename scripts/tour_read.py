"""Reading numbers back out of the tour commands' printed outputs.

The tour's sentences talk about what its commands print. scripts/make_tour_outputs.py fills the
numbers a sentence quotes from those outputs (docs/tour.md's `<!-- value NAME -->` markers), and
scripts/claims.py checks the sentences that must hold on any machine against the same outputs,
run again with other seeds and BLAS kernels. Both read them with the functions here, so a
change in a command's format fails loudly in one place instead of quietly quoting a wrong line.
Each function takes the output's text (docs/tour/outputs/NAME.txt, or a fresh run of the same
command) and raises ValueError, naming what it looked for, when the text does not have it.
"""

import json
import re

import numpy as np

# A number a sentence quotes, between <!-- value NAME --> and <!-- /value --> (docs/tour.md,
# docs/lowrank.md): fill_values rewrites its digits from what it is read from.
VALUE = re.compile(r"<!-- value (?P<name>[\w-]+) -->(?P<text>.*?)<!-- /value -->", re.S)
NUMBER = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)(e[-+]?\d+)?$")  # 0.5, -3, 1e9, 2.2e-16


def fill_values(text, value_of):
    """(text with each value marker's digits replaced by value_of(NAME), how many there were)."""
    return VALUE.subn(lambda m: f"<!-- value {m.group('name')} -->{value_of(m.group('name'))}<!-- /value -->", text)


def is_number(token):
    return bool(NUMBER.match(token.replace(",", "")))


def line_starting(text, start):
    """The first line whose stripped text starts with `start`."""
    for line in text.splitlines():
        if line.strip().startswith(start):
            return line
    raise ValueError(f"no line starting with {start!r}")


def lines_after(text, start):
    """The lines after the first line starting with `start`."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith(start):
            return lines[i + 1:]
    raise ValueError(f"no line starting with {start!r}")


def numbers_in(line):
    return [float(t.replace(",", "")) for t in line.split() if is_number(t)]


def explain_table(text, start):
    """A labelled matrix that `minitx explain` prints under the line starting with `start`
    (e.g. "k = memory @", "6. P = softmax"): (row labels, column labels, array (rows, columns)).
    The header line holds the column labels; each row is a label and one number per column."""
    lines = lines_after(text, start)
    header = lines[0].split()
    rows, values = [], []
    for line in lines[1:]:
        tokens = line.split()
        if len(tokens) <= len(header) or not all(is_number(t) for t in tokens[-len(header):]):
            break
        if ":" in " ".join(tokens[: -len(header)]):  # "row sums: ...", "check: ..." end the table
            break
        rows.append(" ".join(tokens[: -len(header)]))
        values.append([float(t) for t in tokens[-len(header):]])
    if not rows:
        raise ValueError(f"no table under {start!r}")
    return rows, header, np.array(values)


def eval_metrics(text):
    """The JSON line `minitx eval` prints, as a dict."""
    return json.loads(line_starting(text, "{"))


def lab_masking(text):
    """{row name: (causal run's value, no-mask run's value)} of scripts/lab_masking.py's table,
    plus "zeroed sum" (the row masked after the softmax, its sum) and "difference" (largest
    difference between the renormalised row and the model's)."""
    names = ["teacher-forced loss", "teacher-forced token accuracy", "exact match, real greedy decoding",
             "weight on the next position"]
    table = {}
    for name in names:
        line = line_starting(text, name)
        table[name] = tuple(numbers_in(line.split(")")[-1] if "(" in line else line[len(name):])[-2:])
    table["zeroed sum"] = numbers_in(line_starting(text, "softmax of every score"))[-1]
    table["difference"] = float(line_starting(text, "largest difference between the last two").split(":")[1])
    return table


def lab_lengths(text):
    """{length: (trained on, unseen, exact match, {output position: count of first mistakes})}."""
    table = {}
    for line in lines_after(text, "length  trained on"):
        if not line.strip():
            break
        length, trained, unseen, exact, rest = line.split(None, 4)
        mistakes = {int(p): int(c) for p, c in re.findall(r"(\d+) \((\d+)\)", rest)}
        table[int(length)] = (int(trained.replace(",", "")), int(unseen.replace(",", "")), float(exact), mistakes)
    return table


def ablate_table(text):
    """{what was switched off: (exact match, change, token accuracy)} of `minitx ablate`."""
    table = {}
    for line in lines_after(text, "switched off"):
        if not line.strip():
            continue
        name, numbers = line[:40].strip(), line[40:].split()
        table[name] = tuple(float(n) for n in numbers)
    return table


def lab_scaling_untrained(text):
    """{(K, scaled): {column: value}} of scripts/lab_scaling.py's table of untrained heads."""
    columns = ["score std", "largest weight", "rows > 0.99", "entropy", "softmax grad"]
    table = {}
    for line in lines_after(text, "K  scores"):
        if not line.strip():
            break
        scaled = "sqrt(K)" in line
        table[int(line.split()[0]), scaled] = dict(zip(columns, numbers_in(line.split(")")[-1])))
    return table


def lab_scaling_trained(text):
    """{attention: {"std": (start, trained, no factor), "largest": (start, trained, no factor)}} of
    lab_scaling.py's trained-run table, and (exact match trained, exact match with no factor)."""
    table = {}
    for line in lines_after(text, "attention "):
        if not line.strip():
            break
        name, *values = line.split()
        values = [float(v) for v in values]
        table[name] = {"std": tuple(values[:3]), "largest": tuple(values[3:])}
    exact = numbers_in(line_starting(text, "valid exact match").split(":")[1])
    return table, tuple(exact)


def lab_context(text):
    """(pair labels, {encoder step: [cosine per pair]}) of scripts/lab_context.py, and the
    chance similarity of two different words."""
    lines = lines_after(text, "cosine similarity of")
    pairs = lines[0].split()
    table = {}
    for line in lines[1:]:
        if not line.strip():
            break
        tokens = line.split()
        table[" ".join(tokens[: -len(pairs)])] = [float(t) for t in tokens[-len(pairs):]]
    chance = float(re.search(r"have cosine (-?[\d.]+)", text).group(1))
    return pairs, table, chance


def embeddings_change(text):
    """(mean row length, mean move, chance similarity, {token: [(neighbour, cosine), ...]})."""
    length, moved = (float(x) for x in re.findall(r"mean length ([\d.]+); training moved them by ([\d.]+)", text)[0])
    chance = float(re.search(r"has median ([\d.]+)", text).group(1))
    neighbours = {}
    for line in lines_after(text, "nearest neighbours"):
        if not line.strip():
            break
        token, *rest = line.split()
        neighbours[token] = [(rest[i], float(rest[i + 1])) for i in range(0, len(rest), 2)]
    return length, moved, chance, neighbours


def lowrank_heads_summary(text):
    """(number of maps, their rank, K) from the last lines of `minitx lowrank --heads`."""
    m = re.search(r"Every one of the (\d+) maps has rank (\d+) .*K = (\d+)", text)
    if not m:
        raise ValueError("no 'Every one of the N maps has rank R' line")
    return tuple(int(g) for g in m.groups())


def parameters_total(text):
    """The total parameter count `minitx trace` prints."""
    return int(re.search(r"parameters: ([\d,]+) in total", text).group(1).replace(",", ""))


def heatmaps(text):
    """{title: (row labels, column labels, shades (rows, columns))} of every single-head heatmap
    `minitx attention` prints (a title line such as "decoder layer 1, head 1", a line of column
    labels, then one line a row); shades count 0 (' ', under 0.1) to 4 ('█', 0.75 or more).
    Each column's cells sit under its label, as wide as the label and at least 2."""
    from minitx.tools.show import SHADES

    lines = text.splitlines()
    maps = {}
    for i, title in enumerate(lines[:-1]):
        if not re.fullmatch(r"(encoder|decoder) layer \d+, head \d+", title.strip()):
            continue
        header = lines[i + 1]
        cols = header.split()
        widths = [max(2, len(c)) for c in cols]
        left = len(header) - len(header.lstrip(" "))
        rows, shades = [], []
        for line in lines[i + 2:]:
            label = line[:left].strip()
            if not label:
                break
            pos, cells = left, []
            for w in widths:
                cell = line[pos:pos + w].ljust(w)
                cells.append(SHADES.index(cell[0]) if cell[0] in SHADES else 0)
                pos += w + 1
            rows.append(label)
            shades.append(cells)
        maps[title.strip()] = (rows, cols, np.array(shades))
    return maps


# What more than one reader derives from a table: the tour's sentences (scripts/tour_values.py)
# and the claims behind them (scripts/claim_measures.py) take it from here, so the digits a
# sentence quotes and the claim that backs it read the same rows.

def cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def the_ones(explain_text, which):
    """The rows of the table `which` ("k = memory @" or "v = memory @") that belong to the first
    two source tokens `1`, from `minitx explain`'s output: (row a, row b)."""
    rows, _, table = explain_table(explain_text, which)
    a, b = [i for i, r in enumerate(rows) if r == "1"][:2]
    return table[a], table[b]


def aligned(explain_text, alignment):
    """[(written word, the source word its row weighs most, whether alignment[written] is that
    word)] for the rows of `minitx explain`'s weights P that write a word of `alignment`."""
    rows, cols, P = explain_table(explain_text, "6. P = softmax")
    found = []
    for label, row in zip(rows, P):
        written = label.split("→")[1]
        if written in alignment:
            read = cols[int(row.argmax())]
            found.append((written, read, alignment[written] == read))
    return found


def head_costs(ablate_text):
    """{head: exact match lost with that head off} from `minitx ablate`'s table."""
    return {name: -change for name, (_, change, _) in ablate_table(ablate_text).items() if ".head" in name}


def attention_costs(ablate_text):
    """{attention: exact match lost with all its heads off} from `minitx ablate`'s table."""
    return {name.split(" ")[0]: -change for name, (_, change, _) in ablate_table(ablate_text).items() if "(all heads)" in name}


def closest_pairs(embeddings_text, n=5):
    """The n pairs of words whose embedding changes are most alike: [(frozenset pair, cosine)],
    most alike first, from `minitx embeddings --change`'s neighbour lists."""
    _, _, _, neighbours = embeddings_change(embeddings_text)
    pairs = {frozenset((a, b)): s for a, near in neighbours.items() for b, s in near}
    return sorted(pairs.items(), key=lambda item: -item[1])[:n]
