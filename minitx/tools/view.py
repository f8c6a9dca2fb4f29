"""One offline HTML page that shows a trained run from the inside, for one input.

    python -m minitx view RUN_DIR "3 1 4 1 5" [-o FILE.html] [--kind cross --layer 0 --head 0]

The page holds, for that input:
  * every layer's and head's attention weights, encoder self-, decoder self- and (T, S)
    cross-attention, as grids with the tokens on both axes; hovering a cell shows its two tokens
    and its weight (the same numbers as `minitx attention`, one teacher-forced pass over the
    model's greedy output);
  * the walk through one head that `minitx explain` prints, forward and (a toggle) backward,
    made from the same Walk data (minitx.tools.walk), so every number and code line is the
    terminal's;
  * the logit lens table of `minitx lens`.

The file is self-contained: its data is inline JSON, its script and style are inline, small and
hand-written (view.html beside this file), and it asks the network for nothing, so it opens from
disk anywhere. tests/test_view.py opens it in a headless Chromium with the network blocked.
"""

import json
import os
from pathlib import Path

from minitx.errors import UserError
from minitx.tools.example import make_example
from minitx.tools.walk import as_json

TEMPLATE = Path(__file__).with_name("view.html")
GENERATOR = '<meta name="generator" content="minitx view">'  # how we recognise a page we wrote


def attention_data(model, task, cfg, text):
    """Every attention weight of one teacher-forced pass over the greedy output, by kind."""
    from minitx.tools.show import TITLES, look

    src_tokens, out_tokens, maps = look(model, task, cfg, text)
    in_tokens = maps["decoder"].cols
    steps = [f"{a}→{b}" for a, b in zip(in_tokens, out_tokens)]
    axes = {"encoder": (src_tokens, src_tokens, "source token (query)", "source token (key)"),
            "decoder": (steps, in_tokens, "decoder position 'a→b': reads a, writes b (query)", "decoder input token (key)"),
            "cross": (steps, src_tokens, "decoder position 'a→b': reads a, writes b (query)", "source token (key)")}
    kinds = []
    for kind in ("encoder", "decoder", "cross"):
        rows, cols, row_axis, col_axis = axes[kind]
        weights = maps[kind].weights  # (L, H, R, C)
        kinds.append({"kind": kind, "title": TITLES[kind], "rows": rows, "cols": cols, "row_axis": row_axis,
                      "col_axis": col_axis, "shape": list(weights.shape),
                      "weights": [[[[round(float(w), 6) for w in row] for row in head] for head in layer]
                                  for layer in weights]})
    return {"source": src_tokens, "output": out_tokens, "kinds": kinds}


def lens_data(model, task, cfg, text, target):
    from minitx.tools.lens import lens_one, what_the_lens_reads

    example, points, top, p_right = lens_one(model, task, cfg, text, target)
    return {"reads": what_the_lens_reads(model), "describe": example.describe(),
            "rows": [f"{a}→{b}" for a, b in zip(example.in_tokens, example.out_tokens)],
            "stages": [p.short for p in points], "labels": [p.label for p in points],
            "top": top.tolist(), "p_right": [[round(float(p), 6) for p in row] for row in p_right]}


def page_data(model, task, cfg, text, kind="cross", layer=0, head=0, target=None, run_name="the run"):
    """Everything the page shows, as plain lists and strings."""
    from minitx.tools.explain import walk_forward
    from minitx.tools.explain_backward import walk_backward

    forward = walk_forward(model, task, cfg, text, kind, layer, head, run_name)
    backward = walk_backward(model, task, cfg, text, kind, layer, head, run_name, target)
    example = make_example(model, task, cfg, text, target)
    return {"run": run_name, "input": text, "describe": example.describe(),
            "attention": attention_data(model, task, cfg, text),
            "walk": {"kind": kind, "layer": layer, "head": head, "title": forward.header[0],
                     "forward": as_json(forward), "backward": as_json(backward)},
            "lens": lens_data(model, task, cfg, text, target),
            "shape_letters": [["B", "batch size"], ["S", "source length"], ["T", "target length"],
                              ["D", "model width (d_model)"], ["H", "number of heads"], ["K", "head width, D = H * K"],
                              ["F", "feed-forward width (d_ff)"], ["V", "vocabulary size"], ["L", "S or T"]]}


def render(data):
    """The page: the template with the data inline. "</" inside the JSON is written "<\\/", which
    JSON reads as the same two characters, so a token like "</s>" cannot end the script early."""
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    return TEMPLATE.read_text(encoding="utf-8").replace("/*MINITX_DATA*/", payload)


def write_page(html, out):
    """Write `html` to `out`, replacing only a page minitx view wrote before; the file appears
    whole or not at all (written beside it, then renamed)."""
    out = Path(out)
    if out.is_dir():
        raise UserError(f"-o {out}: is a directory; name an HTML file")
    if out.exists() and GENERATOR not in out.read_text(encoding="utf-8", errors="replace")[:2000]:
        raise UserError(f"-o {out}: the file exists and is not a page `minitx view` wrote; "
                        f"choose another name or move that file first")
    if not out.parent.is_dir():
        raise UserError(f"-o {out}: no such directory {out.parent}")
    partial = out.with_name(out.name + ".partial")
    partial.write_text(html, encoding="utf-8")
    os.replace(partial, out)


def view_command(run_dir, text, out=None, kind="cross", layer=0, head=0, target=None):
    from minitx.inference import load_run

    cfg, model, task = load_run(run_dir, need_data=False, fused=False)
    html = render(page_data(model, task, cfg, text, kind, layer, head, target, str(run_dir)))
    out = Path(out) if out else Path(run_dir) / "view.html"
    write_page(html, out)
    print(f"wrote {out} ({len(html.encode()) / 1000:.0f} kB): open it in a browser; it needs no network")
