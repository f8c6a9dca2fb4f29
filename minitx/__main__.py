"""`python -m minitx <command>`: the same as the `minitx` console script."""

from minitx.cli import main

raise SystemExit(main())
