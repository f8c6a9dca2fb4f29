"""BLEU and chrF come from sacrebleu; these check our use of it against numbers worked by hand
from the definitions sacrebleu documents (13a tokenisation, exponential smoothing for BLEU;
character n-grams 1..6 without spaces, beta = 2, averaged over the orders present, for chrF)."""

import math

from minitx.scores import corpus_scores


def test_identical_outputs_score_100():
    refs = ["trois mille cinq cent soixante-dix-huit", "sept mille cent quinze", "mille"]
    s = corpus_scores(refs, refs)
    assert s["bleu"] == 100.0 and s["chrf"] == 100.0, s


def test_bleu_of_a_partial_match_worked_by_hand():
    # "a b c d" against "a b c e": n-gram precisions 3/4, 2/3, 1/2 and 0/1 for n = 1..4. The
    # exponential smoothing replaces the k-th zero precision by 1 / (2**k * count): 1 / 2.
    # Equal lengths, so no brevity penalty: BLEU = (3/4 * 2/3 * 1/2 * 1/2) ** (1/4) = 0.5946.
    s = corpus_scores(["a b c d"], ["a b c e"])
    by_hand = 100 * (3 / 4 * 2 / 3 * 1 / 2 * 1 / 2) ** 0.25
    assert abs(s["bleu"] - by_hand) < 0.005, (s["bleu"], by_hand)
    assert s["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:"), s


def test_bleu_is_a_corpus_score_not_a_mean_of_sentence_scores():
    # One perfect six-word sentence and one wrong word: the corpus has 7 unigrams with 6 right,
    # and every longer n-gram right (5 + 4 + 3 + 2 of them), so BLEU = (6/7) ** (1/4) = 96.22,
    # where averaging the two sentences' scores would give about 50.
    s = corpus_scores(["the cat sat on the mat", "x"], ["the cat sat on the mat", "y"])
    assert abs(s["bleu"] - 100 * (6 / 7) ** 0.25) < 0.005, s


def test_chrf_of_a_partial_match_worked_by_hand():
    # "abc" against "abd": character 1-grams 2 of 3 match, 2-grams 1 of 2, 3-grams 0 of 1, and
    # there are no longer ones. Precision and recall both average (2/3 + 1/2 + 0) / 3 = 7/18,
    # and F2 = 5 P R / (4 P + R) of two equal numbers is that number: 38.89.
    s = corpus_scores(["abc"], ["abd"])
    assert math.isclose(s["chrf"], round(100 * 7 / 18, 2)), s
    assert s["chrf_signature"].startswith("nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:"), s
