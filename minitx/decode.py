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

Neither ever chooses <pad> or <s>: <pad> only fills a row after its </s>, and <s> only starts
the decoder's input. An untrained model may well rate them highly, so we set their scores to
-inf before every argmax and top-k (`emittable`).

Shape letters as everywhere in minitx: B inputs, S source length, D model width, H heads,
K head width, V target vocabulary, t the number of target positions decoded so far.
"""

import copy
import math

import numpy as np

from minitx.data import BOS, EOS, PAD
from minitx.memory import check_beam
from minitx.model import padding_mask
from minitx.nn import log_softmax, split_heads


class CachedSelfAttention:
    """A decoder layer's self-attention, one new position at a time: it keeps the keys and
    values of every position fed so far, k and v (B, H, t, K), and adds the newest one's.

    No causal mask is needed: the cache holds only the past and the present. The mask it is
    given, (B, 1, 1, t+1), hides the positions that were fed <pad> after their row finished, so
    such a row attends exactly as the full-prefix decoder with its padding mask would."""

    def __init__(self, attn, B):
        self.attn = attn
        H, K = attn.n_heads, attn.query.params["W"].shape[1] // attn.n_heads
        dtype = attn.query.params["W"].dtype
        self.k = np.zeros((B, H, 0, K), dtype=dtype)  # (B, H, 0, K): nothing fed yet
        self.v = np.zeros((B, H, 0, K), dtype=dtype)  # (B, H, 0, K)

    def forward(self, x_q, x_kv, mask):
        """x_q = x_kv (B, 1, D), the newest position -> (B, 1, D)."""
        attn = self.attn
        q = split_heads(attn.query.forward(x_q), attn.n_heads)  # (B, H, 1, K)
        k = split_heads(attn.key.forward(x_kv), attn.n_heads)  # (B, H, 1, K)
        v = split_heads(attn.value.forward(x_kv), attn.n_heads)  # (B, H, 1, K)
        self.k = np.concatenate([self.k, k], axis=2)  # (B, H, t+1, K)
        self.v = np.concatenate([self.v, v], axis=2)  # (B, H, t+1, K)
        return attn.attend(q, self.k, self.v, mask)  # (B, 1, D)

    def select(self, rows):
        self.k, self.v = self.k[rows], self.v[rows]  # (B', H, t, K) each


class CachedCrossAttention:
    """A decoder layer's cross-attention with the keys and values of the encoder's output
    computed once, k and v (B, H, S, K): at each step only the query is new."""

    def __init__(self, attn, memory):
        self.attn = attn
        self.k = split_heads(attn.key.forward(memory), attn.n_heads)  # (B, H, S, K)
        self.v = split_heads(attn.value.forward(memory), attn.n_heads)  # (B, H, S, K)

    def forward(self, x_q, x_kv, mask):
        """x_q (B, 1, D); x_kv, the memory, is already in the cache -> (B, 1, D)."""
        q = split_heads(self.attn.query.forward(x_q), self.attn.n_heads)  # (B, H, 1, K)
        return self.attn.attend(q, self.k, self.v, mask)  # (B, 1, D)

    def select(self, rows):
        self.k, self.v = self.k[rows], self.v[rows]  # (B', H, S, K) each


class IncrementalDecoder:
    """The decoder run one position at a time, with a key/value cache per layer.

    We run each decoder layer's own forward (DecoderLayer.forward, or its post-norm subclass's)
    on the newest position only. It runs on a shallow copy of the layer: the copy shares every
    weight and sub-layer with the model, except its two attentions, which answer from the cache
    (CachedSelfAttention, CachedCrossAttention). The model itself is never changed, so nothing
    is left behind if decoding stops half way.

    Dropout must be off: a cached value computed with one dropout mask would be reused under
    another. The constructor switches the model to evaluation mode.
    """

    def __init__(self, model, src):
        """src (B, S) ids. Encodes the source and fills the cross-attention caches."""
        model.train(False)
        self.model = model
        memory, self.src_mask = model.encode(src)  # (B, S, D), (B, 1, 1, S)
        self.layers = []
        for layer in model.decoder.layers:
            stepper = copy.copy(layer)  # the same weights and sub-layers
            stepper.self_attn = CachedSelfAttention(layer.self_attn, src.shape[0])
            stepper.cross_attn = CachedCrossAttention(layer.cross_attn, memory)
            self.layers.append(stepper)
        self.key_mask = np.zeros((src.shape[0], 1, 1, 0), dtype=bool)  # (B, 1, 1, 0)
        self.t = 0  # position of the next token fed in

    def step(self, ids):
        """ids (B,): the token at position t for each row -> logits (B, V) for position t + 1.

        The decoder's forward (Decoder.forward) on a single position."""
        dec = self.model.decoder
        ids = ids[:, None]  # (B, 1)
        self.key_mask = np.concatenate([self.key_mask, padding_mask(ids, self.model.pad_id)], axis=3)  # (B, 1, 1, t+1)
        y = dec.embed(ids, offset=self.t)  # (B, 1, D)
        for layer in self.layers:
            y = layer.forward(y, None, self.key_mask, self.src_mask)  # (B, 1, D); memory is cached
        if dec.norm:
            y = dec.norm.forward(y)  # (B, 1, D)
        self.t += 1
        return dec.out.forward(y)[:, 0]  # (B, V)

    def select(self, rows):
        """Keep, reorder or repeat rows of the batch: rows (B',) indices into the current B rows.
        Beam search uses it to copy each input into `beam` rows and then to follow each
        surviving hypothesis back to the row it grew from."""
        for layer in self.layers:
            layer.self_attn.select(rows)
            layer.cross_attn.select(rows)
        self.src_mask = self.src_mask[rows]  # (B', 1, 1, S)
        self.key_mask = self.key_mask[rows]  # (B', 1, 1, t)


# Tokens the decoder is never allowed to choose (see the module docstring).
NEVER_EMITTED = [PAD, BOS]


def emittable(scores):
    """scores (..., V), logits or log-probabilities -> a copy with <pad> and <s> at -inf, so
    that argmax and top-k never choose them. The other scores are left as they are: beam search
    still ranks hypotheses by the model's own log-probabilities."""
    scores = scores.copy()
    scores[..., NEVER_EMITTED] = -np.inf
    return scores


def output_limit(cfg, task):
    """(limit, why): how many tokens, </s> included, decoding may write for this config and
    data. eval.max_output_len if set; else eval.output_margin times the longest training target
    with its </s>, rounded up, and at most model.max_len, the rows of the positional table."""
    e, table = cfg.eval, cfg.model.max_len
    if e.max_output_len:
        return e.max_output_len, "eval.max_output_len"
    if task.longest_target is None:
        return table, "model.max_len, without the training data to work out a shorter one"
    wanted = math.ceil(e.output_margin * (task.longest_target + 1))
    why = f"eval.output_margin {e.output_margin:g} x the longest training target, {task.longest_target} tokens + </s>"
    return (wanted, why) if wanted <= table else (table, f"model.max_len; {why}, would be {wanted}")


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
        nxt = emittable(dec.step(nxt)).argmax(axis=-1)  # (B,)
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
        nxt = emittable(logits[:, -1]).argmax(axis=-1)  # (B,)
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

    Each input has `beam` places, and all B * beam places run as one batch: row b * beam + j is
    place j of input b. A place holds a live hypothesis until it ends in </s>; the hypothesis is
    then finished, set aside with its score log-prob / gnmt_penalty(length, length_penalty), and
    its place is used up. Each step extends every live hypothesis of an input by every token and
    takes that input's best candidates by log-probability, as many as it has places left: those
    ending in </s> finish, the others are the live hypotheses of the next step. We keep aside
    only the best finished hypothesis and its score.

    When to stop. A live hypothesis of log-probability s only loses log-probability as it grows,
    so whatever it becomes (finished at a length L <= max_len, or cut at max_len) it scores at
    most s / gnmt_penalty(L, alpha). That changes monotonically with L, so its best over the
    lengths still possible is at one end: the hypothesis's bound. An input is done when no live
    hypothesis is left, or when its best finished score is at least every live hypothesis's
    bound: none of them can then beat it. Otherwise we go on; at max_len each live hypothesis is
    cut, and still competes, scored s / gnmt_penalty(max_len, alpha).

    Comparing the best finished score with a live hypothesis's score now, s / gnmt_penalty(t),
    instead of its bound, stops too soon: with alpha > 0 a longer output divides by a larger
    penalty, so a hypothesis behind now can finish ahead (tests/test_decode.py shows one).

    With beam = 1 this is exactly greedy decoding: the one place takes the most likely token,
    and the search ends when that token is </s>. That is why a finished hypothesis uses up its
    place (as in Nematus's beam search). A beam kept `beam` wide to the end searches more: on a
    numbers model trained for 100 steps, beam 4 kept wide finds a higher-scoring output for 15
    of 999 test inputs (exact match 0.671 against 0.673); but with beam 1 the runner-up would live
    on after greedy's </s>, and could finish ahead of it under the length penalty.
    """
    B, k = src.shape[0], beam
    max_len = length_limit(model, max_len)
    dec = IncrementalDecoder(model, src)
    dec.select(np.repeat(np.arange(B), k))  # B * k rows: each input copied k times
    first_row = np.arange(B)[:, None] * k  # (B, 1): row of place 0 of each input
    # All k places start as the same "<s>"; if all could expand at the first step we would get
    # k copies of every hypothesis, so only place 0 starts alive. A log-probability of -inf
    # marks a place with no live hypothesis; its row still runs, and its candidates all score
    # -inf, so none is ever taken.
    scores = np.full((B, k), -np.inf)  # (B, k) log-probability of each live hypothesis
    scores[:, 0] = 0.0
    hyps = np.zeros((B * k, 0), dtype=np.int64)  # (B*k, t) tokens generated so far
    last = np.full(B * k, BOS, dtype=np.int64)  # (B*k,) the newest token of each hypothesis
    best = np.full((B, max_len), PAD, dtype=np.int64)  # (B, max_len) best finished hypothesis
    best_len = np.zeros(B, dtype=np.int64)  # (B,)
    best_score = np.full(B, -np.inf)  # (B,)
    places = np.full(B, k)  # (B,) places not used up by a finished hypothesis
    done = np.zeros(B, dtype=bool)  # (B,)
    rank = np.arange(k)  # (k,)
    for t in range(max_len):
        logp = emittable(log_softmax(dec.step(last))).reshape(B, k, -1)  # (B, k, V)
        V = logp.shape[-1]
        cand = (scores[:, :, None] + logp).reshape(B, k * V)  # (B, k*V): every one-token extension
        # A stable sort breaks ties towards the lower index, as argmax does, so beam 1 == greedy.
        top = np.argsort(-cand, axis=1, kind="stable")[:, :k]  # (B, k), best first
        top_score = np.take_along_axis(cand, top, axis=1)  # (B, k)
        token = top % V  # (B, k)
        row = first_row + top // V  # (B, k): the row each candidate extends
        taken = (rank < places[:, None]) & ~done[:, None] & (top_score > -np.inf)  # (B, k)

        # Finished hypotheses: set aside, keeping the best (all share length t + 1, so the best
        # normalised score is the best log-probability).
        finish = taken & (token == EOS)  # (B, k)
        normalised = np.where(finish, top_score / gnmt_penalty(t + 1, length_penalty), -np.inf)  # (B, k)
        j = normalised.argmax(axis=1)  # (B,)
        better = normalised[np.arange(B), j] > best_score  # (B,)
        best[better, :t] = hyps[row[better, j[better]]]
        best[better, t] = EOS
        best_len[better] = t + 1
        best_score[better] = normalised[better, j[better]]
        places -= finish.sum(axis=1)

        # Live hypotheses: the taken candidates not ending in </s>, in order of log-probability.
        live = taken & (token != EOS)  # (B, k)
        scores = np.where(live, top_score, -np.inf)  # (B, k)
        rows = row.reshape(-1)  # (B*k,)
        last = np.where(live, token, PAD).reshape(-1)  # (B*k,)
        hyps = np.concatenate([hyps[rows], last[:, None]], axis=1)  # (B*k, t+1)
        dec.select(rows)  # each live hypothesis takes over the cache of the row it extends

        # Each live hypothesis's bound over the lengths it can still reach, t + 2 .. max_len.
        if t + 1 < max_len:
            bound = np.maximum(scores / gnmt_penalty(t + 2, length_penalty),
                               scores / gnmt_penalty(max_len, length_penalty))  # (B, k)
            done |= best_score >= bound.max(axis=1)
            if done.all():
                break

    # At max_len the live hypotheses are cut, and compete with their score at that length.
    if not done.all():
        j = scores.argmax(axis=1)  # (B,)
        cut_score = scores[np.arange(B), j] / gnmt_penalty(max_len, length_penalty)  # (B,)
        better = ~done & (cut_score > best_score)  # (B,)
        best[better] = hyps[(first_row[:, 0] + j)[better]]
        best_len[better] = max_len
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
    """The decoding function (model, src, max_len) -> ids for a beam size: greedy for 1. A beam
    whose hypotheses' caches cannot fit in memory is refused before any is allocated."""
    if beam <= 1:
        return greedy

    def decode(model, src, max_len):
        check_beam(model, src.shape[0], beam, src.shape[1], length_limit(model, max_len))
        return beam_search(model, src, max_len, beam, length_penalty)

    return decode
