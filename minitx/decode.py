"""Turning a trained model into output sequences.

Greedy decoding: encode the source once, then repeatedly run the decoder on the prefix so far
and append the most likely next token, until every sequence has produced </s> or the length
limit is reached.
"""

import numpy as np

from minitx.data import BOS, EOS, PAD


def greedy(model, src, max_len):
    """src (B, S) ids -> (B, <= max_len) generated ids (without <s>), <pad> after </s>."""
    model.train(False)
    B = src.shape[0]
    memory, src_mask = model.encode(src)  # (B, S, D), (B, 1, 1, S)
    out = np.full((B, 1), BOS, dtype=np.int64)  # (B, 1)
    done = np.zeros(B, dtype=bool)
    for _ in range(max_len):
        logits = model.decode(out, memory, src_mask)  # (B, t, V)
        nxt = logits[:, -1].argmax(axis=-1)  # (B,)
        nxt[done] = PAD
        out = np.concatenate([out, nxt[:, None]], axis=1)  # (B, t + 1)
        done |= nxt == EOS
        if done.all():
            break
    return out[:, 1:]


def decoder_for(beam, length_penalty):
    """The decoding function for a beam size: greedy for 1."""
    if beam <= 1:
        return greedy
    raise NotImplementedError("beam search")
