"""Write the English-to-French number-words data set: train.tsv, valid.tsv and test.tsv.

Every number from 1 to 9999 appears exactly once, as one line `english<TAB>french`, in UTF-8.
We shuffle the numbers with a seeded generator and cut them into 8000 / 1000 / 999 pairs, so the
model is tested on numbers it never saw in training. The output depends only on the seed, so
running the script twice gives the same bytes; tests/test_numwords.py checks exactly that.

    python scripts/make_numbers.py [--out data/numbers] [--seed 0]
"""

import argparse
import sys
from pathlib import Path

import numpy as np

# We find the repository from this file's location, so the default output directory does not
# depend on where the script is run from, and `import minitx` works even without installing.
REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from minitx.numwords import english, french  # noqa: E402

# 9999 numbers in all: a round 8000 to learn from, and about a tenth each to choose
# checkpoints on (valid) and to report the final score on (test).
SPLIT_SIZES = {"train": 8000, "valid": 1000, "test": 999}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "data" / "numbers",
                        help="directory to write the three .tsv files into")
    parser.add_argument("--seed", type=int, default=0, help="seed for the shuffle")
    args = parser.parse_args()

    numbers = np.arange(1, 10000)
    shuffled = np.random.default_rng(args.seed).permutation(numbers)
    assert len(shuffled) == sum(SPLIT_SIZES.values())

    args.out.mkdir(parents=True, exist_ok=True)
    start = 0
    for split, size in SPLIT_SIZES.items():
        chunk = shuffled[start:start + size]
        start += size
        path = args.out / f"{split}.tsv"
        # newline="\n" keeps the bytes identical on every platform.
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            for n in chunk:
                f.write(f"{english(int(n))}\t{french(int(n))}\n")
        print(f"wrote {size} pairs to {path}")


if __name__ == "__main__":
    main()
