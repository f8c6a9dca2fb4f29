"""Corpus BLEU and chrF of decoded outputs, as sacrebleu computes them.

Exact match says whether a whole output is right, and token accuracy how often the next token is
right when the decoder is given the true prefix; neither says how close a wrong output comes.
The two scores machine translation reports do:

    BLEU  (Papineni et al. 2002): the word n-grams (n = 1 .. 4) the outputs share with their
          references, counted over the whole corpus, as a geometric mean of the four precisions,
          times a penalty when the outputs are shorter than the references.
    chrF  (Popovic 2015): the same with character n-grams (n = 1 .. 6), spaces removed, as an
          F-score weighing recall twice as much as precision; a word with the right stem and
          the wrong ending still earns part of its credit.

Both run from 0 to 100. We let sacrebleu compute them rather than write them here: a BLEU number
depends on how the text is tokenised and how zero counts are smoothed, and sacrebleu's defaults
(its "13a" tokeniser, exponential smoothing) are what published scores use. Its signature names
each of those choices and its own version; we keep it next to every score, so a number can be
compared with another only when their signatures match.

sacrebleu reads text as a person writes it, so we give it detokenised outputs and references
(Task.to_text), and it tokenises them its own way.
"""

from sacrebleu.metrics import BLEU, CHRF


def corpus_scores(hypotheses, references):
    """hypotheses, references: lists of strings, one reference for each hypothesis.
    Returns {"bleu", "chrf"} (0 to 100, rounded to two decimals as sacrebleu prints them) and
    {"bleu_signature", "chrf_signature"}."""
    bleu, chrf = BLEU(), CHRF()
    return {
        "bleu": round(bleu.corpus_score(hypotheses, [references]).score, 2),
        "chrf": round(chrf.corpus_score(hypotheses, [references]).score, 2),
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }
