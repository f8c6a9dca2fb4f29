"""The command line: `python -m minitx <command>` or `minitx <command>`.

Every command is a function taking the parsed arguments. A mistake in the user's input raises
UserError, which we print as one line and exit with status 2; anything else is a bug and keeps
its traceback.
"""

import argparse
import json
import os
import sys


from minitx.errors import UserError
from minitx.exercises import DEFAULT_FOLDER


def cmd_train(args):
    from minitx.config import resolve_config_path
    from minitx.train import train

    threads = [f"train.threads={args.threads}"] if args.threads else []
    train(resolve_config_path(args.config), args.set + threads, args.out, args.resume, args.quiet)


def readable(metrics):
    """Metrics for printing: floats to 6 significant digits (metrics.jsonl keeps them whole)."""
    return {k: float(f"{v:.6g}") if isinstance(v, float) else v for k, v in metrics.items()}


def cmd_eval(args):
    from minitx.decode import decoder_for
    from minitx.inference import load_run
    from minitx.tools.ablate import ablated, describe, parse_specs
    from minitx.train import cut_note, evaluate

    cfg, model, task = load_run(args.run_dir, max_output_len=args.max_len, threads=args.threads)
    if args.split not in task.splits:
        raise UserError(f"--split {args.split}: no such split (choose from {', '.join(task.splits)})")
    chosen = parse_specs(model, args.ablate)  # {} unless --ablate switches something off
    beam = args.beam or cfg.eval.beam
    with ablated(model, chosen):
        metrics = evaluate(model, task, args.split, cfg, decoder_for(beam, cfg.eval.length_penalty))
    ablation = {"ablated": describe(chosen, model)} if chosen else {}
    print(json.dumps({"split": args.split, "beam": beam, **ablation, **readable(metrics)}))
    note = cut_note(metrics, remedy="evaluate again with a larger --max-len")
    if note:
        print(f"minitx: {note}", file=sys.stderr)


def cmd_translate(args):
    from minitx.decode import decoder_for
    from minitx.inference import load_run
    from minitx.data import EOS, detokenize, encode_input
    from minitx.tools.ablate import ablated, parse_specs

    cfg, model, task = load_run(args.run_dir, need_data=False, max_output_len=args.max_len, threads=args.threads)
    src = encode_input(args.text, cfg, task)  # (1, S)
    beam = args.beam or cfg.eval.beam
    with ablated(model, parse_specs(model, args.ablate)):
        out = decoder_for(beam, cfg.eval.length_penalty)(model, src, cfg.eval.max_output_len)[0].tolist()
    print(detokenize(task.tgt_vocab.decode(out), cfg.data.split_apostrophes))
    if EOS not in out:
        print(f"minitx: note: the output reached the length limit of {len(out)} tokens without </s>; "
              f"if it should be longer, translate again with a larger --max-len", file=sys.stderr)


def cmd_gradcheck(args):
    if args.mutants:
        from minitx.mutants import run_cli

        return run_cli(args.config, args.sample or 0)
    from minitx.gradcheck import run_cli

    return run_cli(args.config, args.sample)


def cmd_bench(args):
    from minitx.tools.bench import run_cli

    run_cli(args)


def cmd_attention(args):
    from minitx.tools.show import attention_command

    attention_command(args.run_dir, args.text, args.kind, args.layer, args.head, args.png, not args.no_png)


def cmd_plot(args):
    from minitx.tools.show import curves_command

    curves_command(args.run_dir, args.out)


def cmd_trace(args):
    from minitx.tools.trace import run_cli

    run_cli(args.config, args.set, args.batch, args.depth)


def cmd_lowrank(args):
    from minitx.tools.lowrank import run_cli

    run_cli(args.run_dir, args.base, args.k, args.png, args.heads)


def cmd_ablate(args):
    from minitx.tools.ablate import run_table

    run_table(args.run_dir, args.split, args.limit)


def cmd_explain(args):
    from minitx.tools.explain import explain_command
    from minitx.tools.explain_backward import explain_backward_command

    if args.backward:
        explain_backward_command(args.run_dir, args.text, args.kind, args.layer, args.head, args.target)
    elif args.target is not None:
        raise UserError("--target is for --backward: the forward walk reads the model's own greedy output")
    else:
        explain_command(args.run_dir, args.text, args.kind, args.layer, args.head)


def cmd_lens(args):
    from minitx.tools.lens import lens_command

    lens_command(args.run_dir, args.text, args.split, args.limit, args.target)


def cmd_view(args):
    from minitx.tools.view import view_command

    view_command(args.run_dir, args.text, args.out, args.kind, args.layer, args.head, args.target)


def cmd_embeddings(args):
    from minitx.tools.embeddings import embeddings_command

    embeddings_command(args.run_dir, args.side, args.neighbours, args.png, args.change)


def cmd_exercise(args):
    from minitx.exercises.command import run_cli

    return run_cli(args)


COMMANDS = {
    "train": (cmd_train, "train a model from a YAML config"),
    "eval": (cmd_eval, "evaluate a trained run on a held-out split"),
    "translate": (cmd_translate, "decode one input with a trained run"),
    "gradcheck": (cmd_gradcheck, "check every hand-written gradient against finite differences"),
    "bench": (cmd_bench, "time training steps and print one JSON line (ms/step, GFLOP/s, MFU, memory)"),
    "attention": (cmd_attention, "show every layer's and head's attention for one input"),
    "plot": (cmd_plot, "draw a run's loss and accuracy curves"),
    "trace": (cmd_trace, "print every tensor's shape through one forward and backward pass"),
    "lowrank": (cmd_lowrank, "singular values of a run's weight matrices, or of its fine-tuning update"),
    "explain": (cmd_explain, "one attention head step by step, with the real numbers of one input"),
    "lens": (cmd_lens, "the logit lens: what the decoder would predict after each of its sub-layers"),
    "view": (cmd_view, "write one offline HTML page: every attention grid, one head's walk forward and back, the lens"),
    "ablate": (cmd_ablate, "exact match with each head, and each whole attention, switched off in turn"),
    "embeddings": (cmd_embeddings, "a run's learned embeddings: 2-D PCA projection and nearest neighbours"),
    "exercise": (cmd_exercise, "write a backward pass yourself and have the gradient check grade it"),
}


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line like every other error (and still exit 2)."""

    def error(self, message):
        self.exit(2, f"minitx: error: {message} (see `{self.prog} --help`)\n")


def count(minimum):
    """An argparse type: an integer of at least `minimum`, else a one-line usage error."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def build_parser():
    parser = Parser(prog="minitx", description="A transformer trainer in pure NumPy, built to be read.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    parsers = {name: sub.add_parser(name, help=help, description=help) for name, (_, help) in COMMANDS.items()}

    p = parsers["train"]
    p.add_argument("config", help="a config name in configs/ (tiny, tiny.yaml) or a path")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override one config value (repeatable)")
    p.add_argument("--out", help="run directory (default runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in the run directory from its checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    for name in ("eval", "translate"):
        p = parsers[name]
        p.add_argument("run_dir", help="a run directory made by `minitx train`")
        if name == "translate":
            p.add_argument("text", help='the input, e.g. "forty two" or "3 1 4 1 5"')
        else:
            p.add_argument("--split", default="test", help="valid or test (default test)")
        p.add_argument("--ablate", action="append", default=[], metavar="SPEC",
                       help="switch off an attention or one head, e.g. decoder.layers.1.cross_attn or "
                            "encoder.layers.0.self_attn.head1 (repeatable, or a comma list)")
        p.add_argument("--beam", type=count(0), default=0, help="beam size (default: the run's eval.beam)")
        p.add_argument("--max-len", type=count(1), default=0, help="longest output to decode, </s> included (default: the run's eval.max_output_len)")

    p = parsers["gradcheck"]
    p.add_argument("config", nargs="?", default="tiny", metavar="CONFIG_OR_RUN",
                   help="config whose architecture to check (default tiny), or a run directory to check at its trained weights")
    p.add_argument("--sample", type=count(0), metavar="N",
                   help="probe a seeded sample of N entries per tensor (0: every entry; default every entry for a config, 16 for a run)")
    p.add_argument("--mutants", action="store_true", help="plant each slip of minitx.mutants' catalogue and show that the check catches it")

    p = parsers["bench"]
    p.add_argument("config", nargs="?", default="tiny", help="config to time (default tiny)")
    p.add_argument("--steps", type=count(1), default=20, help="timed steps; we report their median (default 20)")
    p.add_argument("--warmup", type=count(0), default=3, help="untimed steps first (default 3)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override one config value (repeatable)")

    for name in ("train", "eval", "translate", "bench"):
        parsers[name].add_argument("--threads", type=count(1), default=0, help="BLAS threads (default: the config's train.threads, 1)")

    p = parsers["attention"]
    p.add_argument("run_dir", help="a run directory made by `minitx train`")
    p.add_argument("text", help='the input, e.g. "forty two" or "3 1 4 1 5"')
    p.add_argument("--kind", choices=("cross", "encoder", "decoder", "all"), default="all", help="which attention to show (default all)")
    p.add_argument("--layer", type=count(0), help="only this layer (counting from 0)")
    p.add_argument("--head", type=count(0), help="only this head (counting from 0)")
    p.add_argument("--png", metavar="DIR", help="where to save PNG pictures (default RUN_DIR/attention)")
    p.add_argument("--no-png", action="store_true", help="terminal view only")

    p = parsers["plot"]
    p.add_argument("run_dir", help="a run directory made by `minitx train`")
    p.add_argument("--out", help="PNG path (default RUN_DIR/curves.png)")

    p = parsers["trace"]
    p.add_argument("config", help="a config name in configs/ (tiny, tiny.yaml) or a path")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override one config value (repeatable)")
    p.add_argument("--batch", type=count(1), default=2, help="batch size B (default 2)")
    p.add_argument("--depth", type=count(1), help="show modules nested at most this deep (default all; 2 shows the layers)")

    p = parsers["lowrank"]
    p.add_argument("run_dir", help="a run directory made by `minitx train`")
    p.add_argument("--base", metavar="BASE_RUN", help="analyse the update W_run - W_base instead of the weights")
    p.add_argument("--k", type=count(1), default=4, help="rank of the truncation to check (default 4)")
    p.add_argument("--png", action="store_true", help="also draw the spectra to RUN_DIR/spectra.png, or with --heads RUN_DIR/head-spectra.png (needs matplotlib)")
    p.add_argument("--heads", action="store_true",
                   help="per head: singular values of the value-to-output map W_V[:, h] @ W_O[h, :] and of the "
                        "query-key map W_Q[:, h] @ W_K[:, h]^T (rank K each)")

    p = parsers["explain"]
    p.add_argument("run_dir", help="a run directory made by `minitx train`")
    p.add_argument("text", help='the input, e.g. "3 1 4 1 5"')
    p.add_argument("--kind", choices=("encoder", "decoder", "cross"), default="cross", help="which attention (default cross)")
    p.add_argument("--layer", type=count(0), default=0, help="layer, counting from 0 (default 0)")
    p.add_argument("--head", type=count(0), default=0, help="head, counting from 0 (default 0)")
    p.add_argument("--backward", action="store_true",
                   help="the head's backward pass instead: the loss on one example and every gradient through the head, "
                        "checked against the model's backward and finite differences")
    p.add_argument("--target", help="with --backward: the target to compute the loss against (default: the reference "
                                    "where the task or the run's data has one, else the model's greedy output)")

    p = parsers["lens"]
    p.add_argument("run_dir", help="a run directory made by `minitx train`")
    p.add_argument("text", nargs="?", help='an input to follow position by position, e.g. "3 1 4 1 5"')
    p.add_argument("--split", help="also (or instead) summarise a held-out split: valid or test")
    p.add_argument("--limit", type=count(1), help="with --split: only its first N examples (default all)")
    p.add_argument("--target", help="the target for TEXT (default: the reference where the task or the run's data "
                                    "has one, else the model's greedy output)")

    p = parsers["view"]
    p.add_argument("run_dir", help="a run directory made by `minitx train`")
    p.add_argument("text", help='the input, e.g. "3 1 4 1 5"')
    p.add_argument("-o", "--out", help="the HTML file to write (default RUN_DIR/view.html)")
    p.add_argument("--kind", choices=("encoder", "decoder", "cross"), default="cross", help="the attention whose head the page walks through (default cross)")
    p.add_argument("--layer", type=count(0), default=0, help="its layer, counting from 0 (default 0)")
    p.add_argument("--head", type=count(0), default=0, help="its head, counting from 0 (default 0)")
    p.add_argument("--target", help="the target for the backward walk and the lens (default: the reference where "
                                    "known, else the model's greedy output)")

    p = parsers["ablate"]
    p.add_argument("run_dir", help="a run directory made by `minitx train`")
    p.add_argument("--split", default="valid", help="valid or test (default valid)")
    p.add_argument("--limit", type=count(1), help="only the first N examples of the split (default all)")

    p = parsers["embeddings"]
    p.add_argument("run_dir", help="a run directory made by `minitx train`")
    p.add_argument("--side", choices=("source", "target"), default="source", help="which embedding table (default source)")
    p.add_argument("--change", action="store_true", help="look at what training added, W - W_0, instead of W")
    p.add_argument("--neighbours", type=count(1), default=3, help="nearest neighbours listed per token (default 3)")
    p.add_argument("--png", metavar="PATH", help="where to draw the projection (default RUN_DIR/embeddings-SIDE.png; needs matplotlib)")

    p = parsers["exercise"]
    p.add_argument("name", nargs="?", help="an exercise to start or grade (leave out to list them all with their state)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--reset", action="store_true", help="start NAME again from its skeleton, keeping your file as NAME.py.bak-N")
    mode.add_argument("--solution", action="store_true", help="show the plain minitx lines that solve NAME")
    mode.add_argument("--break", dest="break_it", action="store_true",
                      help="plant a well-known mistake in minitx's own layer for NAME (an exercise or a bug) and show what the check says")
    p.add_argument("--dir", default=DEFAULT_FOLDER, help=f"your working folder (default {DEFAULT_FOLDER}, in the current directory)")
    return parser


def main(argv=None):
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage mistake (2), already printed
        return e.code
    # One BLAS thread for every command, as train.threads' default: commands that read a
    # config or a run then set that one's train.threads (or --threads) instead.
    from minitx.threads import use_blas_threads

    use_blas_threads(1)
    try:
        return COMMANDS[args.command][0](args) or 0
    except UserError as e:
        print(f"minitx: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    except KeyboardInterrupt:
        print("minitx: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `minitx explain ... | head` closed the pipe early; that is not an error. We point
        # stdout at /dev/null so that Python's own flush at exit does not report it either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
