"""The exercises solved: for each skeleton, the lines that replace its TODO lines.

These live with the tests, not in the package, so that a learner browsing minitx/exercises/
does not meet them first; `python -m minitx exercise NAME --solution` shows minitx's own plain
layer instead. The tests apply them to the real skeletons, so they prove that every skeleton,
as shipped, can be completed into a file the grader passes. scripts/make_exercises_doc.py uses
them for the documented "passing" output.

Each entry maps a text found on exactly one TODO line of the skeleton to the line(s) that replace
that whole line, at its indentation.
"""

SOLUTIONS = {
    "linear": {
        "dW = np.zeros_like(W)": ["dW = x_rows.T @ dout_rows  # (D_in, D_out)"],
        "db = np.zeros_like(": ["db = dout_rows.sum(axis=0)  # (D_out,)"],
        "dx_rows = np.zeros_like(": ["dx_rows = dout_rows @ W.T  # (N, D_in)"],
    },
    "softmax": {
        "dx = np.zeros_like(P)": ["dx = P * (dout - (dout * P).sum(axis=-1, keepdims=True))  # (..., S)"],
    },
    "attention": {
        "dP = np.zeros_like(P)": ["dP = dout @ v.transpose(0, 1, 3, 2)  # (B, H, T, S)"],
        "dv = np.zeros_like(v)": ["dv = P.transpose(0, 1, 3, 2) @ dout  # (B, H, S, K)"],
        "dscores = np.zeros_like(P)": ["dscores = P * (dP - (dP * P).sum(axis=-1, keepdims=True))  # (B, H, T, S)"],
        "dscores = dscores": ["dscores = np.where(mask, dscores, 0.0)  # (B, H, T, S)"],
        "dq = np.zeros_like(q)": ["dq = dscores @ k / math.sqrt(K)  # (B, H, T, K)"],
        "dk = np.zeros_like(k)": ["dk = dscores.transpose(0, 1, 3, 2) @ q / math.sqrt(K)  # (B, H, S, K)"],
    },
    "heads": {
        "dW_O = np.zeros_like(": ["dW_O = concat_rows.T @ dy_rows  # (D, D)"],
        "db_O = np.zeros_like(": ["db_O = dy_rows.sum(axis=0)  # (D,)"],
        "dconcat = np.zeros_like(": ["dconcat = (dy_rows @ W_O.T).reshape(B, T, D)  # (B, T, D)"],
        "dheads = np.zeros(": ["dheads = split_heads(dconcat, self.n_heads)  # (B, H, T, K)"],
        "dx_q = np.zeros_like(": ["dx_q = merge_heads(dq)  # (B, T, D)"],
        "dx_kv = np.zeros(": ["dx_kv = merge_heads(dk) + merge_heads(dv)  # (B, S, D)"],
    },
    "layernorm": {
        "dgamma = np.zeros(D)": ["dgamma = (dout * xhat).reshape(-1, D).sum(axis=0)  # (D,)"],
        "dbeta = np.zeros(D)": ["dbeta = dout.reshape(-1, D).sum(axis=0)  # (D,)"],
        "dxhat = np.zeros_like(": ["dxhat = dout * self.params[\"gamma\"]  # (..., D)"],
        "dx = np.zeros_like(": ["dx = rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True) - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))  # (..., D)"],
    },
    "embedding": {
        "dW = np.zeros_like(": ["dW = np.zeros_like(self.params[\"W\"])  # (V, D)", "np.add.at(dW, ids, dout * not_pad)"],
    },
    "cross_entropy": {
        "dlogits = np.zeros_like(": ["dlogits = (np.exp(logp) - q) * valid[..., None] / n  # (B, T, V)"],
    },
    "cross_attention": {
        "dheads = np.zeros(": ["dheads = split_heads(self.output.backward(dout), self.n_heads)  # (B, H, T, K)"],
        "dmemory = np.zeros((B,": ["dmemory = self.value.backward(merge_heads(dv)) + self.key.backward(merge_heads(dk))  # (B, S, D)"],
        "dy = np.zeros_like(": ["dy = self.query.backward(merge_heads(dq))  # (B, T, D)"],
        "pass  # TODO": ["dy, dmemory_layer = layer.backward(dy)  # (B, T, D), (B, S, D)", "dmemory = dmemory + dmemory_layer"],
    },
    "residual": {
        "TODO pre-norm": ["dx = dout + self.norm.backward(self.ff.backward(dout))  # (B, L, D)"],
        "TODO post-norm": ["ds = self.norm.backward(dout)  # (B, L, D)", "dx = ds + self.ff.backward(ds)  # (B, L, D)"],
    },
}


def solved(name, skeleton):
    """The skeleton's text with every TODO line replaced by its solution."""
    lines = skeleton.splitlines()
    for marker, replacement in SOLUTIONS[name].items():
        hits = [i for i, line in enumerate(lines) if marker in line and "TODO" in line]
        assert len(hits) == 1, f"{name}: {marker!r} is on {len(hits)} TODO lines of the skeleton, not 1"
        i = hits[0]
        indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
        lines[i : i + 1] = [indent + r for r in replacement]
    text = "\n".join(lines) + "\n"
    assert "TODO" not in text.split('"""', 2)[-1].replace("marked TODO", ""), f"{name}: a TODO line has no solution"
    return text
