"""`python -m minitx exercise`: list the exercises, start one, grade it, reset it, see its
solution, or break minitx's own layer.

The learner's files live in a working folder they own (my_exercises/ in the current directory,
or --dir). An exercise is started by the first `exercise NAME`, which copies its skeleton there
and grades it at once, so the first table already lists the gradients to write. From then on the
file is theirs: nothing but an explicit --reset replaces it, and --reset first keeps the old file
as NAME.py.bak-N, with N one more than any backup already there, so no backup is overwritten.
"""

import difflib
import inspect
import re
import shlex
from importlib import resources
from pathlib import Path

from minitx.errors import UserError
from minitx.exercises import DEFAULT_FOLDER, breakit, grader, room
from minitx.exercises.catalog import BY_NAME, EXERCISES
from minitx.gradcheck import THRESHOLD
from minitx.shell import minitx_command

BUGS = {bug.name: (exercise, bug) for exercise in EXERCISES for bug in exercise.bugs}


def skeleton(exercise):
    return (resources.files("minitx.exercises") / "skeletons" / f"{exercise.name}.py").read_text()


def find(name):
    if name in BY_NAME:
        return BY_NAME[name]
    close = difflib.get_close_matches(name, list(BY_NAME), n=1)
    suggestion = f"did you mean '{close[0]}'? " if close else ""
    raise UserError(f"no exercise '{name}' ({suggestion}the exercises are {', '.join(BY_NAME)})")


def working_file(exercise, folder):
    path = folder / f"{exercise.name}.py"
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder}: exists and is not a directory (choose another --dir)")
    if path.exists() and not path.is_file():
        raise UserError(f"{path}: exists and is not a file")
    return path


def start(exercise, folder):
    """Copy the skeleton to the working folder unless the learner's file is already there.
    Returns the path and whether we just created it."""
    path = working_file(exercise, folder)
    if path.exists():
        return path, False
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(path, "x") as f:  # "x": if the file appeared meanwhile, fail rather than overwrite it
            f.write(skeleton(exercise))
    except OSError as e:
        raise UserError(f"{path}: cannot create it ({e.strerror}; choose another --dir)") from None
    return path, True


def next_backup(path):
    """NAME.py.bak-N with N one more than the largest backup there: never an earlier one's name."""
    numbers = [int(m.group(1)) for p in path.parent.glob(f"{path.name}.bak-*") if (m := re.fullmatch(rf"{re.escape(path.name)}\.bak-(\d+)", p.name))]
    return path.with_name(f"{path.name}.bak-{max(numbers, default=0) + 1}")


def reset(exercise, folder):
    path = working_file(exercise, folder)
    fresh = skeleton(exercise)
    if not path.exists():
        start(exercise, folder)
        print(f"Nothing to reset: {path} did not exist. It now holds the skeleton of exercise {exercise.name}.")
        return 0
    mine = path.read_bytes()
    if mine == fresh.encode():
        print(f"{path} is still the untouched skeleton: nothing to back up, nothing changed.")
        return 0
    backup = next_backup(path)
    try:
        with open(backup, "xb") as f:  # "x": never overwrite an existing backup
            f.write(mine)
        path.write_text(fresh)
    except OSError as e:
        raise UserError(f"{backup}: cannot write it ({e.strerror}); {path} is unchanged") from None
    print(f"Kept your file as {backup}; {path} is the untouched skeleton again.")
    return 0


def exercise_command(name, folder):
    """The command that grades exercise `name` in `folder`, as the learner would type it: with
    --dir unless the folder is the default one, so that it finds the same file."""
    where = "" if Path(folder) == Path(DEFAULT_FOLDER) else f" --dir {shlex.quote(str(folder))}"
    return f"{minitx_command()} exercise {name}{where}"


def grade(exercise, folder):
    path, created = start(exercise, folder)
    number = EXERCISES.index(exercise) + 1
    if created:
        print(f"Started exercise {number}, {exercise.name}: your copy is {path}. Fill in the lines marked TODO in its\n"
              f"backward, then run `{exercise_command(exercise.name, folder)}` again to grade it. Its grade so far:\n")
    graded = room.grade(exercise, path)
    print(graded.shown_output(), end="")
    results = graded.results()
    print(grader.wrap(f"Grading {path}: {exercise.class_name}'s gradients against central differences (float64, random "
                      f"upstream gradient) and against minitx's {exercise.plain}.") + "\n")
    print(grader.format_results(results))
    right, total = grader.counts(results)
    if right == total:
        worst = max(r.vs_numeric for result in results for r in result.rows)
        nxt = EXERCISES[number] if number < len(EXERCISES) else None
        print(f"{exercise.name}: passing, every gradient right ({right} of {total}; worst relative error {worst:.1e}, threshold {THRESHOLD:.0e}).")
        print(f"Next: {exercise_command(nxt.name, folder)}" if nxt else
              "That was the last exercise. minitx's other backward passes (ReLU, dropout, the tied output layer, whole\n"
              "encoder and decoder layers) are in minitx/nn/ and minitx/model.py; docs/backward.md derives each one.")
        return 0
    todo = grader.todo_lines(path.read_text(errors="replace"), skeleton(exercise))
    left = f"; {todo} TODO line{'s' if todo != 1 else ''} of {path} not yet changed" if todo else ""
    print(f"{exercise.name}: failing, {right} of {total} gradients right{left}.")
    return 1


def state_of_each(folder):
    """Each exercise's state, for the list. We grade every started file at once, each in its own
    child process, so that a file that never returns holds the list up for one time limit only;
    what the files print is not shown here."""
    started = [(e, folder / f"{e.name}.py") for e in EXERCISES if (folder / f"{e.name}.py").is_file()]
    graded = {r.exercise.name: r for r in room.grade_all(started)}
    found = []
    for e in EXERCISES:
        if e.name not in graded:
            found.append("not started")
            continue
        try:
            right, total = grader.counts(graded[e.name].results())
        except UserError:
            found.append(f"failing (still running after {graded[e.name].time_limit:g} s)" if graded[e.name].timed_out else "failing (stops with an error)")
            continue
        found.append("passing" if right == total else f"failing ({right} of {total} right)")
    return found


def list_exercises(folder):
    states = state_of_each(folder)
    print(f"Exercises, easiest first. You write a backward pass; the gradient check grades it. Your files: {folder}/\n")
    width = max(len(e.name) for e in EXERCISES)
    swidth = max(len(s) for s in states)
    print(f" #  {'exercise':<{width}}  {'state':<{swidth}}  what you write")
    for number, (e, s) in enumerate(zip(EXERCISES, states), 1):
        print(f"{number:>2}  {e.name:<{width}}  {s:<{swidth}}  {e.what}")
    todo = next((e for e, s in zip(EXERCISES, states) if s != "passing"), None)
    print()
    if todo:
        path = Path(folder) / f"{todo.name}.py"
        where = f"grades {path}" if path.exists() else f"the first run copies the skeleton to {path}"
        print(f"Next: {exercise_command(todo.name, folder)}   ({where})")
    print("Also: --reset NAME starts one again (keeping your file as a backup), --solution NAME shows minitx's own")
    print("lines, --break NAME plants a known mistake in minitx's layer and shows what the check says.")
    return 0


def show_solution(exercise):
    print(f"minitx's plain code that solves exercise {exercise.name}: the grader compares your gradients with it.")
    print("It is minitx's own layer, not written for the exercise, so it may do a little more; the lines marked >")
    print("are the ones your TODO lines correspond to.")
    for function, marks in exercise.solution:
        lines, start_line = inspect.getsourcelines(function)
        body = code_start(lines)
        print(f"\n{breakit.relative_source_file(function)}, lines {start_line}-{start_line + len(lines) - 1}, {function.__qualname__}:")
        for i, line in enumerate(lines):
            marked = i >= body and not line.lstrip().startswith("#") and any(m in line for m in marks)
            print(f"{start_line + i:>4} {'>' if marked else ' '} {line.rstrip()}".rstrip())
    return 0


def code_start(lines):
    """The index of a function's first line after its docstring: we mark code lines only, and a
    docstring's formulas may repeat the code's text."""
    if len(lines) < 2 or not lines[1].strip().startswith('"""'):
        return 1
    if lines[1].count('"""') == 2:
        return 2
    return next(i for i in range(2, len(lines)) if '"""' in lines[i]) + 1


def list_bugs():
    print("Planted bugs: `python -m minitx exercise --break NAME` plants one in minitx's own plain layer (in memory;")
    print("no file changes) and runs the exercise's check on it. NAME is a bug or an exercise (all of its bugs).\n")
    width = max(len(b) for b in BUGS)
    ewidth = max(len(e.name) for e in EXERCISES)
    print(f"{'exercise':<{ewidth}}  {'bug':<{width}}  the mistake")
    for name, (exercise, bug) in BUGS.items():
        print(f"{exercise.name:<{ewidth}}  {name:<{width}}  {bug.mistake}")
    return 0


def break_one(exercise, bug):
    """Plant `bug` in fresh plain layers, check them as the exercise checks a learner's file,
    and show the table and what it teaches. Returns whether the check caught it."""
    results, changes = [], []
    for case, broken in zip(exercise.cases(), exercise.cases()):
        changes += [c for c in breakit.plant(broken.plain, bug.edits, bug.name, bug.target) if c not in changes]
        results.append(grader.check_case(case, broken.plain))
    grader.explain(results, exercise, planted=bug)
    print(grader.wrap(f"Bug {bug.name}: {bug.mistake}."))
    print("Planted in a copy of minitx's plain code, in memory (no file is changed):")
    for c in changes:
        print(f"  {c.file}, line {c.line}\n  - {c.before}\n  + {c.after}")
    print("\n" + grader.wrap(f"Checked as exercise {exercise.name}: against central differences (float64, random upstream "
                             f"gradient) and against the unbroken {exercise.plain}.") + "\n")
    for result in results:
        if result.forward_diff > grader.FORWARD_TOLERANCE:
            where = f" ({result.label})" if result.label else ""
            print(f"The forward{where} differs from minitx's by up to {result.forward_diff:.2e}: the bug is in the forward itself.\n")
    print(grader.format_results(results))
    right, total = grader.counts(results)
    caught = right < total
    print(f"{'Caught' if caught else 'NOT caught'}: {total - right} of {total} gradients wrong.")
    print(grader.wrap(f"What it teaches: {bug.lesson}"))
    return caught


def break_it(name):
    if name is None:
        return list_bugs()
    if name in BUGS:
        planted = [BUGS[name]]
    elif name in BY_NAME:
        planted = [(BY_NAME[name], bug) for bug in BY_NAME[name].bugs]
    else:
        close = difflib.get_close_matches(name, list(BUGS) + list(BY_NAME), n=1)
        suggestion = f"did you mean '{close[0]}'? " if close else ""
        raise UserError(f"--break {name}: no such exercise or bug ({suggestion}`{minitx_command()} exercise --break` lists the bugs)")
    caught = []
    for i, (exercise, bug) in enumerate(planted):
        if i:
            print()
        caught.append(break_one(exercise, bug))
    return 0 if all(caught) else 1


def run_cli(args):
    folder = Path(args.dir)
    if args.break_it:
        return break_it(args.name)
    if args.name is None:
        if args.reset or args.solution:
            raise UserError(f"--{'reset' if args.reset else 'solution'} needs an exercise name: one of {', '.join(BY_NAME)}")
        return list_exercises(folder)
    exercise = find(args.name)
    if args.solution:
        return show_solution(exercise)
    if args.reset:
        return reset(exercise, folder)
    return grade(exercise, folder)
