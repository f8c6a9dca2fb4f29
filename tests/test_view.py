"""`minitx view`: a self-contained page, opened in headless Chromium with the network blocked.

The browser test needs the system's Chromium and the playwright package. Where either is
missing it skips with one line saying which, except when MINITX_REQUIRE_BROWSER=1 (CI sets it in
.ci/run, which installs both), where the missing browser is a failure."""

import json
import os
import re
import sys
from pathlib import Path

import pytest

from minitx.cli import main
from minitx.inference import load_run
from minitx.tools.example import make_example
from minitx.tools.explain import walk_forward
from minitx.tools.explain_backward import walk_backward
from minitx.tools.show import look
from minitx.tools.walk import as_json, text_lines

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from browser import offline_page, why_no_browser  # noqa: E402

TEXT = "3 1 4 1 5 2"  # S = 7 source tokens with </s>; the decoder's T depends on what the model writes


@pytest.fixture(scope="module")
def page(explain_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("view") / "page.html"
    assert main(["view", str(explain_run), TEXT, "-o", str(path), "--kind", "decoder", "--head", "1"]) == 0
    return path


def page_data(path):
    html = path.read_text(encoding="utf-8")
    payload = re.search(r'<script type="application/json" id="minitx-data">(.*?)</script>', html, re.S).group(1)
    return json.loads(payload)


def test_the_page_is_self_contained(page):
    html = page.read_text(encoding="utf-8")
    # No address to fetch anything from: no URL, no external script, style sheet, font or image.
    assert not re.search(r"https?://|//cdn|<link\b|\bsrc=|@import|url\(", html), re.findall(r"https?://\S+|<link[^>]*>|src=\S+", html)
    data = page_data(page)
    assert "</s>" in data["attention"]["source"]  # written "<\/s>" inside the script, read back whole
    assert [k["kind"] for k in data["attention"]["kinds"]] == ["encoder", "decoder", "cross"]


def test_the_walk_on_the_page_is_the_terminals(explain_run, page):
    """Every number and code line of the page's walks is in `explain`'s printout (and with
    --backward), in the same order."""
    cfg, model, task = load_run(explain_run, need_data=False, fused=False)
    walks = {"forward": walk_forward(model, task, cfg, TEXT, "decoder", 0, 1, str(explain_run)),
             "backward": walk_backward(model, task, cfg, TEXT, "decoder", 0, 1, str(explain_run))}
    for direction, walk in walks.items():
        shown = page_data(page)["walk"][direction]
        assert shown == as_json(walk)
        squeezed = "\n".join(" ".join(line.split()) for line in text_lines(walk))
        position = 0
        for step in shown["steps"]:
            pieces = [step["title"]] + step["code"]
            for part in step["parts"]:
                if part["kind"] == "table":
                    pieces += [" ".join([label] + cells) for label, cells in zip(part["rows"], part["cells"])]
                else:
                    pieces.append(part["text"])
            for piece in pieces:
                found = squeezed.find(" ".join(piece.split()), position)
                assert found >= 0, f"{direction}: not in the terminal's walk after character {position}: {piece!r}"
                position = found


def test_the_page_is_never_written_over_a_users_file(explain_run, tmp_path, capsys):
    mine = tmp_path / "notes.html"
    mine.write_text("<p>my notes</p>")
    assert main(["view", str(explain_run), "3 1 4", "-o", str(mine)]) == 2
    assert "the file exists and is not a page `minitx view` wrote" in capsys.readouterr().err
    assert mine.read_text() == "<p>my notes</p>"
    page = tmp_path / "page.html"
    assert main(["view", str(explain_run), "3 1 4", "-o", str(page)]) == 0
    assert main(["view", str(explain_run), "3 1 4 1", "-o", str(page)]) == 0  # our own page: replaced
    assert page_data(page)["input"] == "3 1 4 1"


def browser_or_skip():
    reason = why_no_browser()
    if reason and os.environ.get("MINITX_REQUIRE_BROWSER") == "1":
        pytest.fail(f"MINITX_REQUIRE_BROWSER=1 but {reason}")
    if reason:
        pytest.skip(f"no browser test here: {reason}")


def test_no_browser_skips_here_and_fails_in_ci(monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "why_no_browser", lambda: "no Chromium on this machine")
    monkeypatch.delenv("MINITX_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no browser test here: no Chromium on this machine"):
        browser_or_skip()
    monkeypatch.setenv("MINITX_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="MINITX_REQUIRE_BROWSER=1 but no Chromium on this machine"):
        browser_or_skip()


def test_in_a_browser_offline(explain_run, page, tmp_path):
    browser_or_skip()
    check_in_browser(page, explain_run, TEXT, "decoder", 0, 1, tmp_path)


def check_in_browser(page, run_dir, text, kind, layer, head, tmp_path):
    """Every check of the page for `text` on run_dir, whose walk is of (kind, layer, head)."""
    cfg, model, task = load_run(run_dir, need_data=False, fused=False)
    src_tokens, out_tokens, maps = look(model, task, cfg, text)  # the model's own weights, (L, H, R, C)
    steps = [f"{a}→{b}" for a, b in zip(maps["decoder"].cols, out_tokens)]
    labels = {"encoder": (src_tokens, src_tokens), "decoder": (steps, maps["decoder"].cols), "cross": (steps, src_tokens)}
    backward = walk_backward(model, task, cfg, text, kind, layer, head, str(run_dir))
    n_lens_rows = len(make_example(model, task, cfg, text).out_tokens)
    with offline_page() as (tab, log):
        tab.goto(page.as_uri())
        # Every grid: L x H of each kind, each with the model's shape and tokens on both axes
        # (read in one go: each question to the browser is a round trip).
        grids = tab.evaluate("""() => [...document.querySelectorAll("table.grid")].map(t => ({
            kind: t.dataset.kind, layer: Number(t.dataset.layer), head: Number(t.dataset.head),
            rows: [...t.querySelectorAll("tbody th")].map(th => th.textContent),
            cols: [...t.querySelectorAll("thead th")].slice(1).map(th => th.textContent),
            cells: [...t.querySelectorAll("tbody tr")].map(tr => tr.querySelectorAll("td").length)}))""")
        for kind, (rows, cols) in labels.items():
            L, H, R, C = maps[kind].weights.shape
            assert (R, C) == (len(rows), len(cols))
            mine = [g for g in grids if g["kind"] == kind]
            assert sorted((g["layer"], g["head"]) for g in mine) == [(l, h) for l in range(L) for h in range(H)], mine
            for g in mine:
                assert g["rows"] == rows and g["cols"] == cols and g["cells"] == [C] * R, (g, rows, cols)
        # Hover: cross-attention, layer 0, head 1 alone, a cell off the diagonal, then the largest
        # weight of head 0 of each self-attention.
        tab.click("#kinds button[data-kind=cross]")
        tab.select_option("#head", "1")
        assert tab.locator("figure[data-kind=cross][data-layer='0'][data-head='0']").is_hidden()
        R, C = maps["cross"].weights.shape[2:]
        cells = [("cross", 1, min(1, R - 1), min(2, C - 1))] + [(kind, 0, *divmod(int(maps[kind].weights[0, 0].argmax()), len(labels[kind][1])))
                                         for kind in ("encoder", "decoder")]
        for kind, head, r, c in cells:
            tab.click(f"#kinds button[data-kind={kind}]")
            tab.select_option("#head", str(head))
            tab.hover(f"table.grid[data-kind={kind}][data-layer='0'][data-head='{head}'] td[data-r='{r}'][data-c='{c}']")
            tip = tab.inner_text("#tip")
            rows, cols = labels[kind]
            weight = float(maps[kind].weights[0, head, r, c])
            assert f"query {rows[r]}  →  key {cols[c]}" in tip, tip
            assert f"weight {weight:.3f}" in tip, (tip, weight)
            assert f"layer 0, head {head}" in tip, tip
        # The walk: forward shown, backward hidden until its button is pressed.
        assert tab.locator("#walk-forward section.step").count() == 11
        assert tab.locator("#walk-backward").is_hidden()
        tab.click("#show-backward")
        assert tab.locator("#walk-forward").is_hidden() and tab.locator("#walk-backward").is_visible()
        titles = tab.locator("#walk-backward section.step h3").all_inner_texts()
        assert titles == [step.title for step in backward.steps]
        code = tab.locator("#walk-backward pre.code").all_inner_texts()
        assert "dscores = P * (dP - (dP * P).sum(axis=-1, keepdims=True))  # (B, H, T, S)" in "\n".join(code)
        checks = [t.strip() for t in tab.locator("#walk-backward p.check").all_inner_texts()]
        assert checks == [line.strip() for line in text_lines(backward) if line.strip().startswith("check:")]
        # The lens: one row per target position (the reference target, </s> included).
        assert tab.locator("#lens-table tr").count() == 1 + n_lens_rows
        assert log.errors == [], log.errors
        assert log.outside() == [], log.outside()
        assert log.requests == [page.as_uri()], log.requests

        # The two checks above see a page that reaches for the network, or that fails.
        planted = tmp_path / "planted.html"
        planted.write_text('<script src="https://cdn.example.org/lib.js"></script><script>undefinedFunction()</script>')
        tab.goto(planted.as_uri())
        assert log.outside() == ["https://cdn.example.org/lib.js"], log.requests
        assert any("undefinedFunction" in e for e in log.errors), log.errors
