"""Turning a trained model into output sequences: greedy decoding and beam search.

Both encode the source once and then grow the output one token at a time. The decoder is
causal: position t attends only to positions 0..t, so nothing that position t computed ever
changes when later tokens arrive. In particular each decoder layer's self-attention keys and
values for the earlier positions stay the same, and the cross-attention keys and values depend
only on the encoder output. We therefore keep them in a cache (IncrementalDecoder) and feed
only the newest token through the decoder at each step:

    recomputing the prefix:  step t runs all t + 1 positions through every layer
    with the cache:          step t runs 1 position, and attends over the t + 1 cached keys

The answer is the same (tests/test_decode.py checks it to 1e-6 in float64); only the work
differs. `greedy_uncached` keeps the plain recomputing version to compare against.

Beam search (section 7 of Wu et al. 2016, "Google's Neural Machine Translation System") keeps
the `beam` most likely prefixes instead of one, and ranks finished outputs by log-probability
divided by the length penalty ((5 + length) / 6) ** alpha, so that longer outputs, which
collect more negative log-probabilities, are not unfairly beaten by short ones.

Shape letters as everywhere in minitx: B inputs, S source length, D model width, H heads,
K head width, V target vocabulary, t the number of target positions decoded so far.
"""

import numpy as np

from minitx.data import BOS, EOS, PAD
from minitx.model import padding_mask
from minitx.nn import log_softmax, split_heads


class IncrementalDecoder:
    """The decoder run one position at a time, with a key/value cache per layer.

    For decoder layer i we keep:
        cross_k[i], cross_v[i]  (B, H, S, K)  keys and values of the encoder output, computed
                                              once here, read by every step
        self_k[i], self_v[i]    (B, H, t, K)  self-attention keys and values of every position
                                              decoded so far, one position appended per step
    and, shared by all layers, key_mask (B, 1, 1, t): False where the token fed was <pad>, so a
    finished row attends exactly as the full-prefix decoder with its padding mask would.

    Each step runs the model's own code (Stack.embed, Residual.branch and .merge, the attention's
    projections and MultiHeadAttention.attend, the feed-forward), only on one position and with
    the cached keys and values. Dropout must be off: a cached value computed with one dropout
    mask would be reused under another. The constructor switches the model to evaluation mode.
    """

    def __init__(self, model, src):
        """src (B, S) ids. Encodes the source and fills the cross-attention cache."""
        model.train(False)
        self.model = model
        memory, self.src_mask = model.encode(src)  # (B, S, D), (B, 1, 1, S)
        self.cross_k, self.cross_v, self.self_k, self.self_v = [], [], [], []
        for layer in model.decoder.layers:
            attn = layer.cross_attn
            k = split_heads(attn.key.forward(memory), attn.n_heads)  # (B, H, S, K)
            v = split_heads(attn.value.forward(memory), attn.n_heads)  # (B, H, S, K)
            self.cross_k.append(k)
            self.cross_v.append(v)
            # Empty (B, H, 0, K) arrays to append to, with the right B, H, K and dtype.
            self.self_k.append(k[:, :, :0])  # (B, H, 0, K)
            self.self_v.append(v[:, :, :0])  # (B, H, 0, K)
        self.key_mask = np.zeros((src.shape[0], 1, 1, 0), dtype=bool)  # (B, 1, 1, 0)
        self.t = 0  # position of the next token fed in

    def step(self, ids):
        """ids (B,): the token at position t for each row -> logits (B, V) for position t + 1.

        The same layer-by-layer computation as DecoderLayer.forward, on a single position."""
        dec = self.model.decoder
        ids = ids[:, None]  # (B, 1)
        self.key_mask = np.concatenate([self.key_mask, padding_mask(ids, self.model.pad_id)], axis=3)  # (B, 1, 1, t+1)
        y = dec.embed(ids, offset=self.t)  # (B, 1, D)
        for i, layer in enumerate(dec.layers):
            h = layer.res_self.branch(y)  # (B, 1, D)
            y = layer.res_self.merge(y, self._self_attention(i, layer.self_attn, h))  # (B, 1, D)
            h = layer.res_cross.branch(y)  # (B, 1, D)
            y = layer.res_cross.merge(y, self._cross_attention(i, layer.cross_attn, h))  # (B, 1, D)
            h = layer.res_ff.branch(y)  # (B, 1, D)
            y = layer.res_ff.merge(y, layer.ff.forward(h))  # (B, 1, D)
        if dec.norm:
            y = dec.norm.forward(y)  # (B, 1, D)
        self.t += 1
        return dec.out.forward(y)[:, 0]  # (B, V)

    def _self_attention(self, i, attn, h):
        """h (B, 1, D), the newest position -> (B, 1, D), attending over every position so far.

        No causal mask is needed: the cache holds only the past and the present."""
        q = split_heads(attn.query.forward(h), attn.n_heads)  # (B, H, 1, K)
        k = split_heads(attn.key.forward(h), attn.n_heads)  # (B, H, 1, K)
        v = split_heads(attn.value.forward(h), attn.n_heads)  # (B, H, 1, K)
        self.self_k[i] = np.concatenate([self.self_k[i], k], axis=2)  # (B, H, t+1, K)
        self.self_v[i] = np.concatenate([self.self_v[i], v], axis=2)  # (B, H, t+1, K)
        return attn.attend(q, self.self_k[i], self.self_v[i], self.key_mask)  # (B, 1, D)

    def _cross_attention(self, i, attn, h):
        """h (B, 1, D) -> (B, 1, D): only the query is new; keys and values were cached once."""
        q = split_heads(attn.query.forward(h), attn.n_heads)  # (B, H, 1, K)
        return attn.attend(q, self.cross_k[i], self.cross_v[i], self.src_mask)  # (B, 1, D)

    def select(self, rows):
        """Keep, reorder or repeat rows of the batch: rows (B',) indices into the current B rows.
        Beam search uses it to copy each input into `beam` rows and then to follow each
        surviving hypothesis back to the row it grew from."""
        self.cross_k = [k[rows] for k in self.cross_k]  # (B', H, S, K) each
        self.cross_v = [v[rows] for v in self.cross_v]  # (B', H, S, K) each
        self.self_k = [k[rows] for k in self.self_k]  # (B', H, t, K) each
        self.self_v = [v[rows] for v in self.self_v]  # (B', H, t, K) each
        self.src_mask = self.src_mask[rows]  # (B', 1, 1, S)
        self.key_mask = self.key_mask[rows]  # (B', 1, 1, t)


def length_limit(model, max_len):
    """The decoder reads positions 0 .. L-1 (<s> first), so it can emit at most as many tokens
    as its positional table has rows."""
    return min(max_len, model.decoder.positions.table.shape[0])


def greedy(model, src, max_len):
    """src (B, S) ids -> (B, L <= max_len) generated ids (without <s>), <pad> after </s>.

    At each step we append the most likely next token, until every row has produced </s> or
    the length limit is reached. A finished row keeps being fed <pad> (its key is masked), so
    the batch stays rectangular."""
    dec = IncrementalDecoder(model, src)
    max_len = length_limit(model, max_len)
    B = src.shape[0]
    nxt = np.full(B, BOS, dtype=np.int64)  # (B,)
    done = np.zeros(B, dtype=bool)
    out = []
    for _ in range(max_len):
        nxt = dec.step(nxt).argmax(axis=-1)  # (B,)
        nxt[done] = PAD
        out.append(nxt)
        done |= nxt == EOS
        if done.all():
            break
    return np.stack(out, axis=1)  # (B, L)


def greedy_uncached(model, src, max_len):
    """The same as greedy, without the cache: every step runs the decoder over the whole prefix
    again. Slower (step t redoes t positions' work), and simpler to check."""
    model.train(False)
    max_len = length_limit(model, max_len)
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
    return out[:, 1:]  # (B, L)


def gnmt_penalty(length, alpha):
    """GNMT's length penalty lp = ((5 + length) / 6) ** alpha; a hypothesis is ranked by
    log-probability / lp. alpha = 0 ranks by plain log-probability, which favours short
    outputs; larger alpha favours longer ones."""
    return ((5.0 + length) / 6.0) ** alpha


def beam_search(model, src, max_len, beam=4, length_penalty=0.6):
    """src (B, S) ids -> (B, L <= max_len) the best hypothesis per input, <pad> after </s>.

    All B * beam hypotheses run as one batch: row b * beam + j holds beam j of input b. Each
    step extends every live hypothesis by every token, and of those B x (beam * V) candidates
    we look at the best 2 * beam per input (by log-probability so far):
      * a candidate ending in </s> that ranks among the first `beam` is finished: we set it
        aside, scored log-prob / gnmt_penalty(length, length_penalty), and it grows no more;
      * the best `beam` candidates not ending in </s> are the live hypotheses of the next step.
    Every live hypothesis adds at most one </s> candidate, so 2 * beam candidates always hold
    at least `beam` live ones. We keep aside only what we need of the finished ones: the best
    score, its tokens, and how many have finished.

    An input is done once `beam` hypotheses have finished and the best of them scores at least
    as well as every live hypothesis does now (the rule of Hugging Face's beam search). The
    count alone is not enough: a confident model keeps its one good hypothesis alive while
    the other beams, improbable from the start, finish early; stopping then would return one
    of those. An input with nothing finished by max_len returns its best live hypothesis.

    With beam = 1 this is exactly greedy decoding.
    """
    B, k = src.shape[0], beam
    max_len = length_limit(model, max_len)
    dec = IncrementalDecoder(model, src)
    dec.select(np.repeat(np.arange(B), k))  # B * k rows: each input copied k times
    first_row = np.arange(B)[:, None] * k  # (B, 1): row of beam 0 of each input
    # All k beams start as the same "<s>"; if all could expand at the first step we would get
    # k copies of every hypothesis, so only beam 0 starts alive (the others at log-prob -inf).
    scores = np.full((B, k), -np.inf)  # (B, k) log-probability of each live hypothesis
    scores[:, 0] = 0.0
    hyps = np.zeros((B * k, 0), dtype=np.int64)  # (B*k, t) tokens generated so far
    last = np.full(B * k, BOS, dtype=np.int64)  # (B*k,) the newest token of each hypothesis
    best = np.full((B, max_len), PAD, dtype=np.int64)  # (B, max_len) best finished hypothesis
    best_len = np.zeros(B, dtype=np.int64)  # (B,)
    best_score = np.full(B, -np.inf)  # (B,)
    n_finished = np.zeros(B, dtype=np.int64)  # (B,)
    done = np.zeros(B, dtype=bool)  # (B,)
    rank = np.arange(2 * k)  # (2k,)
    for t in range(max_len):
        logp = log_softmax(dec.step(last)).reshape(B, k, -1)  # (B, k, V)
        V = logp.shape[-1]
        cand = (scores[:, :, None] + logp).reshape(B, k * V)  # (B, k*V): every one-token extension
        # A stable sort breaks ties towards the lower index, as argmax does, so beam 1 == greedy.
        top = np.argsort(-cand, axis=1, kind="stable")[:, : 2 * k]  # (B, 2k), best first
        top_score = np.take_along_axis(cand, top, axis=1)  # (B, 2k)
        token = top % V  # (B, 2k)
        row = first_row + top // V  # (B, 2k): the row each candidate extends

        # Finished hypotheses: set aside, keeping the best (all share length t + 1, so the best
        # normalised score is the best log-probability).
        is_eos = token == EOS  # (B, 2k)
        finish = is_eos & (rank < k) & ~done[:, None] & (top_score > -np.inf)  # (B, 2k)
        normalised = np.where(finish, top_score / gnmt_penalty(t + 1, length_penalty), -np.inf)  # (B, 2k)
        j = normalised.argmax(axis=1)  # (B,)
        better = normalised[np.arange(B), j] > best_score  # (B,)
        best[better, :t] = hyps[row[better, j[better]]]
        best[better, t] = EOS
        best_len[better] = t + 1
        best_score[better] = normalised[better, j[better]]
        n_finished += finish.sum(axis=1)

        # Live hypotheses: the best k candidates not ending in </s>, in order of log-probability.
        keep = np.argsort(is_eos, axis=1, kind="stable")[:, :k]  # (B, k)
        rows = np.take_along_axis(row, keep, axis=1).reshape(-1)  # (B*k,)
        last = np.take_along_axis(token, keep, axis=1).reshape(-1)  # (B*k,)
        scores = np.take_along_axis(top_score, keep, axis=1)  # (B, k)
        hyps = np.concatenate([hyps[rows], last[:, None]], axis=1)  # (B*k, t+1)
        dec.select(rows)  # each live hypothesis takes over the cache of the row it extends

        # With beam = 1 this stops exactly where greedy does: when the best candidate is </s>,
        # every live one has a lower log-probability at the same length.
        live_best = scores.max(axis=1) / gnmt_penalty(t + 1, length_penalty)  # (B,)
        done |= (n_finished >= k) & (best_score >= live_best)
        if done.all():
            break

    # Inputs with nothing finished by max_len fall back to their best live hypothesis (all have
    # length max_len, so the best log-probability wins).
    empty = n_finished == 0  # (B,)
    if empty.any():
        j = scores.argmax(axis=1)  # (B,)
        best[empty] = hyps[(first_row[:, 0] + j)[empty]]
        best_len[empty] = max_len
    return best[:, : best_len.max()]  # (B, L)


def sequence_score(model, src, out, length_penalty):
    """The score beam search ranks by, for given outputs: src (B, S), out (B, L) as returned by
    greedy or beam_search -> (B,) log-probability of each row up to and including its first
    </s> (all of it if there is none), divided by gnmt_penalty(that length, length_penalty)."""
    model.train(False)
    B = out.shape[0]
    tgt_in = np.concatenate([np.full((B, 1), BOS, dtype=out.dtype), out[:, :-1]], axis=1)  # (B, L)
    logp = log_softmax(model.forward(src, tgt_in))  # (B, L, V)
    token_logp = np.take_along_axis(logp, out[..., None], axis=-1)[..., 0]  # (B, L)
    eos = out == EOS  # (B, L)
    counted = np.cumsum(eos, axis=1) - eos == 0  # (B, L): positions up to the first </s>
    length = counted.sum(axis=1)  # (B,)
    return (token_logp * counted).sum(axis=1) / gnmt_penalty(length, length_penalty)  # (B,)


def decoder_for(beam, length_penalty):
    """The decoding function (model, src, max_len) -> ids for a beam size: greedy for 1."""
    if beam <= 1:
        return greedy

    def decode(model, src, max_len):
        return beam_search(model, src, max_len, beam, length_penalty)

    return decode
