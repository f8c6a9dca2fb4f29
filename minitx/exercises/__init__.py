"""Exercises: the learner writes the backward passes, and minitx's gradient check grades them.

    catalog.py     the exercises in order, their cases, hints, solutions and planted bugs
    reference.py   minitx's plain layers, shaped like the exercises that isolate part of a layer
    grader.py      loading a learner's file and checking it: finite differences and minitx's layer
    room.py        running the grader on a learner's file in a child process: a time limit, a
                   cap on what it prints, one line for whatever ends it (warmup.py: its start)
    breakit.py     planting a well-known mistake in a plain layer, in memory
    command.py     `python -m minitx exercise`: list, start, grade, --reset, --solution, --break
    skeletons/     the files a learner copies and edits (read as text, never imported by minitx)

docs/exercises.md is the learner's guide.
"""

# The learner's working folder when `exercise --dir` names no other, in the current directory.
DEFAULT_FOLDER = "my_exercises"
