"""Every `# forward:` comment in the plain code quotes a real line of the forward it undoes.

The rule. In a method of class C, a comment line

    # forward: LINE                 in `backward`: LINE is a line of C.forward;
                                    in `NAME_backward`: a line of C.NAME (Stack.embed_backward
                                    undoes Stack.embed)
    # forward (in NAME): LINE       LINE is a line of C.NAME, a helper the forward calls
                                    (MultiHeadAttention.attend, Transformer.decode)

"A line" is one physical line of that method's source, its trailing comment cut off, compared
with whitespace collapsed (so indentation may be kept in a quote, as in a quoted loop:
`# forward: for layer in self.layers:` then `# forward:     x = layer.forward(x, src_mask)`).
C.NAME is looked up as Python does, so a subclass's backward quotes the forward it inherits or
overrides. One backward line may sit under several comments when it undoes several lines, each
quoting one. A paraphrase (`y = max(x, 0)` for `return np.maximum(x, 0)`, or a line with
", for each layer" added) fails.
"""

import importlib.util
import inspect
import io
import re
import tokenize

import pytest

from minitx import model
from minitx.nn import attention, embedding, layernorm, layers, loss

PLAIN = [layers, attention, layernorm, embedding, loss, model]
QUOTE = re.compile(r"^\s*# forward(?: \(in (\w+)\))?: (.*)$")


def code_lines(function):
    """The physical lines of function's source with trailing comments cut, whitespace collapsed."""
    source = inspect.getsource(function)
    lines = source.splitlines()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            row, col = token.start
            lines[row - 1] = lines[row - 1][:col]
    return {" ".join(line.split()) for line in lines if line.strip()}


def misquotes(module):
    """One message for every `# forward` comment in module's classes that quotes no line of the
    method it names."""
    problems = []
    for class_name, cls in inspect.getmembers(module, inspect.isclass):
        if cls.__module__ != module.__name__:
            continue
        for method_name, method in vars(cls).items():
            if not inspect.isfunction(method):
                continue
            lines, start = inspect.getsourcelines(method)
            for offset, line in enumerate(lines):
                match = QUOTE.match(line)
                if not match:
                    continue
                helper, quote = match.groups()
                target = helper or ("forward" if method_name == "backward" else method_name.removesuffix("_backward"))
                where = f"{module.__name__}.{class_name}.{method_name}, line {start + offset}"
                if target == method_name or not hasattr(cls, target):
                    problems.append(f"{where}: quotes `{quote}` from {class_name}.{target}, which is not a method it undoes")
                elif " ".join(quote.split()) not in code_lines(getattr(cls, target)):
                    problems.append(f"{where}: `{quote}` is not a line of {class_name}.{target}")
    return problems


@pytest.mark.parametrize("module", PLAIN, ids=lambda m: m.__name__)
def test_every_forward_comment_quotes_a_line_of_its_forward(module):
    problems = misquotes(module)
    assert not problems, "\n".join(problems)


def test_the_plain_code_has_forward_comments_to_check():
    found = sum(bool(QUOTE.match(line)) for m in PLAIN for line in inspect.getsource(m).splitlines())
    assert found >= 60, f"only {found} `# forward` comments: is the pattern still the one the code uses?"


def test_a_paraphrase_fails(tmp_path):
    # LayerNorm as it read before its comments quoted their lines: two paraphrases.
    source = inspect.getsource(layernorm)
    source = source.replace('# forward: y = self.params["gamma"] * xhat + self.params["beta"]', "# forward: y = gamma * xhat + beta")
    source = source.replace("# forward: xhat = (x - mean) * rstd\n", "# forward: xhat = (x - mean) * rstd, and mean, var and rstd are functions of x too\n")
    path = tmp_path / "paraphrased_layernorm.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("paraphrased_layernorm", path)
    paraphrased = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(paraphrased)
    problems = misquotes(paraphrased)
    assert len(problems) == 2, problems
    assert "`y = gamma * xhat + beta` is not a line of LayerNorm.forward" in problems[0], problems
