"""Write the real output of every tour command to docs/tour/outputs/NAME.txt.

    make tour                                   # trains the runs (scripts/tour.py)
    python scripts/make_tour_outputs.py         # runs every command in scripts/tour.py's COMMANDS

Each file starts with the command line, as a reader would type it from the repository root, and
holds everything it printed. The pictures the commands draw (with matplotlib installed) are
copied to docs/tour/images/. docs/tour.md includes these files rather than pasting output by
hand, so what the page shows is what the code prints.
"""

import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tour import COMMANDS, REPO_ROOT, RUNS, run_command  # noqa: E402

OUTPUTS = REPO_ROOT / "docs" / "tour" / "outputs"
IMAGES = REPO_ROOT / "docs" / "tour" / "images"
PICTURES = ["{numbers}/head-spectra.png", "{numbers}/embeddings-source.png", "{numbers}/embeddings-source-change.png"]


def main():
    runs = {name: run_dir for name, (run_dir, _, _) in RUNS.items()}
    missing = [d for d in runs.values() if not (REPO_ROOT / d / "checkpoint.npz").exists()]
    if missing:
        raise SystemExit(f"not trained yet: {', '.join(missing)}; run `make tour` first")
    OUTPUTS.mkdir(parents=True, exist_ok=True)
    for name, args in COMMANDS:
        start = time.perf_counter()
        shown, text = run_command(args, runs)
        (OUTPUTS / f"{name}.txt").write_text(f"$ {shown}\n{text}")
        print(f"{name:<28} {time.perf_counter() - start:5.1f} s   $ {shown}", flush=True)
    IMAGES.mkdir(parents=True, exist_ok=True)
    for picture in PICTURES:
        path = REPO_ROOT / picture.format(**runs)
        if path.exists():
            shutil.copy(path, IMAGES / path.name)
            print(f"copied {path.relative_to(REPO_ROOT)} to {(IMAGES / path.name).relative_to(REPO_ROOT)}")
    print(f"wrote {len(COMMANDS)} files to {OUTPUTS.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
