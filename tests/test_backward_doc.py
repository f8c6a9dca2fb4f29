"""docs/backward.md cannot drift from the code without a test failing.

Every relative link must reach an existing file, and every `#L` anchor must fall inside it and
land on what the link's text names: `Class.method` on `def method` inside `class Class`, a
function or class on its `def` or `class` line, a constant on its assignment, a quoted line of
code on that line. Every line of a ```python block (but a "..." marking left-out lines) must be
quoted from a file its section links to. Heading anchors must match a heading, and every
parameter name the doc spells out must be one the model has.

Section 10's claim about a row masked everywhere is checked here too, against finite
differences, since no other test feeds attention such a row.
"""

import re
from pathlib import Path

import numpy as np

from helpers import assert_gradients_match, small_model_config
from minitx.gradcheck import check_layer
from minitx.model import Transformer
from minitx.nn.attention import ScaledDotProductAttention

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "backward.md"
LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
LINE_ANCHOR = re.compile(r"^L(\d+)(?:-L(\d+))?$")
IDENTIFIER = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)?$")
WINDOW = 4  # a single-line anchor may sit on a decorator or a comment just above what it names


def slug(heading):
    """The anchor GitHub gives a markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def headings(path):
    """The anchors of every heading in a markdown file (lines starting with # outside code)."""
    anchors, fenced = set(), False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif line.startswith("#") and not fenced:
            anchors.add(slug(line.lstrip("#")))
    return anchors


def doc_links(doc=DOC):
    """(line number in the doc, link text, target) for every link outside code blocks."""
    links, fenced = [], False
    for number, line in enumerate(doc.read_text().splitlines(), start=1):
        if line.startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            links.extend((number, text, target) for text, target in LINK.findall(line))
    return links


def enclosing_class(lines, index):
    """The name of the top-level class whose body holds lines[index], or None."""
    for line in reversed(lines[: index + 1]):
        match = re.match(r"class (\w+)", line)
        if match:
            return match.group(1)
        if line and not line[0].isspace() and not line.startswith(("#", ")", '"')):
            return None
    return None


def names_symbol(path, lines, first, last, name):
    """Why lines[first..last] (0-based) do not hold `name`, or None if they do."""
    window = "\n".join(lines[first : last + 1])
    if not IDENTIFIER.match(name):
        return None if name in window else f"the linked lines do not contain `{name}`"
    owner, _, leaf = name.rpartition(".")
    found = re.compile(rf"^\s*(?:def|class)\s+{leaf}\b|^\s*{leaf}\s*=", re.M)
    hits = [i for i in range(first, last + 1) if found.match(lines[i])]
    if not hits:
        return f"no `def {leaf}`, `class {leaf}` or `{leaf} =` in the linked lines"
    if owner and owner != path.stem:
        inside = enclosing_class(lines, hits[0])
        if owner != inside:
            where = f"inside `class {inside}`" if inside else "not inside any class"
            return f"`{leaf}` at line {hits[0] + 1} is {where}, not `{owner}`"
    return None


def check_link(number, text, target, doc=DOC):
    """None if the link is sound, else a message naming it."""
    where = f"{doc.relative_to(ROOT)}:{number}: [{text}]({target})"
    if re.match(r"^[a-z]+:", target):
        return None  # an external address: not ours to check offline
    path_part, _, anchor = target.partition("#")
    path = (doc.parent / path_part).resolve() if path_part else doc
    if not path.exists():
        return f"{where}: {path_part} does not exist"
    if path.suffix in (".png", ".jpg", ".svg"):
        return None  # a picture: that it exists is all there is to check
    if path.suffix == ".md":
        if anchor and anchor not in headings(path):
            return f"{where}: no heading with anchor #{anchor} in {path.name}"
        return None
    symbols = re.findall(r"`([^`]+)`", text)
    if not anchor:
        # A file linked as a whole must be named as one; anything more precise needs an anchor.
        if any(Path(s.rstrip("/")).name != path.name for s in symbols) or not symbols:
            return f"{where}: a link that names a symbol needs a #L line anchor"
        return None
    match = LINE_ANCHOR.match(anchor)
    if not match:
        return f"{where}: #{anchor} is not a line anchor (#L12 or #L12-L20)"
    lines = path.read_text().splitlines()
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) else min(first + WINDOW - 1, len(lines))
    if not 1 <= first <= last <= len(lines):
        return f"{where}: #{anchor} is outside {path.name}, which has {len(lines)} lines"
    if not symbols:
        return f"{where}: the link text names no `symbol` for its #L anchor to be checked against"
    for name in symbols:
        problem = names_symbol(path, lines, first - 1, last - 1, name)
        if problem:
            return f"{where}: {problem} (lines {first}-{last} of {path.relative_to(ROOT)})"
    return None


def sections():
    """The doc split at its '## ' headings: (heading, text) pairs."""
    parts = re.split(r"^(## .*)$", DOC.read_text(), flags=re.M)
    return list(zip(parts[1::2], parts[2::2]))


def test_every_link_resolves_and_lands_on_what_it_names():
    links = doc_links()
    assert len(links) > 50, f"found only {len(links)} links: has the link syntax changed?"
    problems = [p for p in (check_link(*link) for link in links) if p]
    assert not problems, "stale links in docs/backward.md:\n" + "\n".join(problems)


def test_the_tours_code_links_land_on_what_they_name_too():
    tour = ROOT / "docs" / "tour.md"
    links = doc_links(tour)
    assert len(links) > 20, f"found only {len(links)} links in docs/tour.md"
    problems = [p for p in (check_link(*link, doc=tour) for link in links) if p]
    assert not problems, "stale links in docs/tour.md:\n" + "\n".join(problems)


def test_every_code_link_has_a_line_anchor():
    problems = [
        f"docs/backward.md:{number}: [{text}]({target})"
        for number, text, target in doc_links()
        if target.startswith("../minitx/") and target.endswith(".py")
        and not re.search(r"`[^`]*\.py`", text)  # a whole file, linked by its name
    ]
    assert not problems, "links into minitx/ without a #L anchor:\n" + "\n".join(problems)


def test_quoted_python_appears_in_a_file_its_section_links_to():
    problems = []
    for heading, text in sections():
        files = {(DOC.parent / t.partition("#")[0]).resolve() for _, t in LINK.findall(text) if ".py" in t}
        code_lines = [line.strip() for f in files if f.suffix == ".py" and f.exists() for line in f.read_text().splitlines()]
        for block in re.findall(r"^```python\n(.*?)^```", text, flags=re.M | re.S):
            for quoted in block.splitlines():
                quoted = quoted.strip()
                if quoted and quoted != "..." and not any(quoted in line for line in code_lines):
                    problems.append(f"{heading}: `{quoted}` is in none of {sorted(f.name for f in files)}")
    assert not problems, "quoted code in docs/backward.md no longer matches the code:\n" + "\n".join(problems)


def test_the_contents_list_every_section():
    contents = set(re.findall(r"^\d+\. \[[^\]]+\]\(#([^)]+)\)$", DOC.read_text(), flags=re.M))
    section_anchors = {slug(heading.lstrip("#")) for heading, _ in sections()}
    assert contents == section_anchors, f"in contents only: {contents - section_anchors}; in sections only: {section_anchors - contents}"


def test_every_parameter_name_in_the_doc_is_one_the_model_has():
    names = set()
    for tie_output in (True, False):
        model = Transformer(small_model_config(tie_output=tie_output), 7, 9, 0, np.random.default_rng(0))
        names |= set(model.params) | {name for name, _ in model.named_modules()}
    # Dotted paths such as decoder.layers.0.norm2.gamma, but not self.decoder.backward.
    used = re.findall(r"(?<![\w.])(?:encoder|decoder)\.[\w.]*\w", DOC.read_text())
    unknown = sorted(set(used) - names)
    assert used and not unknown, f"names in docs/backward.md that the model does not have: {unknown}"


def test_a_row_masked_everywhere_gives_its_queries_and_keys_no_gradient():
    # Section 10: every score of the second query's row is replaced by MASKED, so P is uniform
    # there and independent of q and k; only the backward's np.where line makes dq and dk say so.
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((1, 1, 2, 4)), rng.standard_normal((1, 1, 3, 4)), rng.standard_normal((1, 1, 3, 4))
    mask = np.array([[True, False, True], [False, False, False]])[None, None]  # (1, 1, T, S)
    layer = ScaledDotProductAttention()
    assert_gradients_match(check_layer(layer, [q, k, v], rng, forward=lambda q, k, v: layer.forward(q, k, v, mask)))
    P = layer.attn
    assert np.all(P[0, 0, 1] == 1 / 3), f"the row masked everywhere has weights {P[0, 0, 1]}"
    dP = rng.standard_normal(P.shape)
    softmax_rule = P * (dP - (dP * P).sum(axis=-1, keepdims=True))
    assert np.abs(softmax_rule[0, 0, 1]).max() > 1e-3, "the softmax rule alone would already give 0 there"
