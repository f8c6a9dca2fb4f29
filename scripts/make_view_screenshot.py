"""Draw docs/images/view-numbers.png: the page `minitx view` writes for the tour's numbers run.

    make tour                                  # trains runs/tour/numbers (scripts/tour.py)
    python scripts/make_view_screenshot.py     # or: make view-screenshot

We write the page for the tour's numbers input, open it in headless Chromium with the network
blocked (scripts/browser.py), show every head of layer 1's cross-attention, hover over one cell
so that its tooltip shows, and photograph the top of the page. The script stops with an error if
the page logged one or asked for anything but its own file.
"""

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from browser import offline_page, why_no_browser  # noqa: E402
from tour import NUMBERS_INPUT, REPO_ROOT, RUNS  # noqa: E402

RUN = RUNS["numbers"][0]
PAGE = Path(RUN) / "view.html"
IMAGE = Path("docs/images/view-numbers.png")


def main():
    if not (REPO_ROOT / RUN / "checkpoint.npz").exists():
        raise SystemExit(f"not trained yet: {RUN}; run `make tour` first")
    reason = why_no_browser()
    if reason:
        raise SystemExit(f"cannot draw the screenshot: {reason}")
    subprocess.run([sys.executable, "-m", "minitx", "view", RUN, NUMBERS_INPUT, "-o", str(PAGE),
                    "--kind", "cross", "--layer", "1", "--head", "0"], cwd=REPO_ROOT, check=True)
    with offline_page(width=1280, height=1200) as (page, log):
        page.goto((REPO_ROOT / PAGE).as_uri())
        page.click("#kinds button[data-kind=cross]")
        page.select_option("#layer", "1")
        page.select_option("#head", "all")
        top = page.locator("#attention").bounding_box()["y"] - 10
        grids = page.locator("section.kind-layer[data-kind=cross][data-layer='1']").bounding_box()
        # The row "cent→quarante" of head 0: where the decoder, about to write "quarante", looks.
        page.hover("table.grid[data-kind=cross][data-layer='1'][data-head='0'] td[data-r='4'][data-c='4']")
        page.screenshot(path=str(REPO_ROOT / IMAGE), clip={"x": 0, "y": top, "width": 1280,
                                                            "height": grids["y"] + grids["height"] + 20 - top})
        assert not log.errors, log.errors
        assert not log.outside(), log.outside()
    print(f"wrote {IMAGE} from {PAGE}")


if __name__ == "__main__":
    main()
