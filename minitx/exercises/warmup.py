"""What every grader child would otherwise do first, done once in the server it is forked from.

room.py's children are forked from one 'forkserver' process, which imports this module before
it forks any. Each child then starts with the first-time work below already done, and grades a
file in a few milliseconds instead of some fifty: numpy.random is imported on first use, the
BLAS thread count is set, and inspect has found and read the source of every method a planted
mistake changes (the grader plants the exercise's mistakes to recognise them in a learner's
gradients).
"""

import inspect

import numpy.random  # noqa: F401 - numpy imports it lazily, at the first case a child builds

from minitx.exercises import room  # noqa: F401 - the children's code
from minitx.exercises.catalog import EXERCISES
from minitx.threads import use_blas_threads

use_blas_threads(1)
for exercise in EXERCISES:
    for bug in exercise.bugs + exercise.lookalikes:
        for edit in bug.edits:
            inspect.getsourcelines(edit.function)
