"""Number words in English and French, the source and target of our toy translation task.

`english(n)` and `french(n)` spell a whole number from 1 to 9999. Translating one into the other
is a good first task for a small transformer: the vocabulary is tiny (a few dozen words), every
sentence is short, and yet the model cannot copy word by word. French counts 70 as "sixty ten"
and 80 as "four twenties", so "seventy one" becomes "soixante et onze" and "ninety" becomes
"quatre-vingt-dix": the model must learn to reorder, merge and split words, and to look ahead.

English is written the plain way, lowercase, one space between words, no hyphens and no "and":
"nine thousand nine hundred ninety nine".

French follows the traditional (pre-1990) spelling rules:
- tens and units under 100 are joined by a hyphen ("vingt-deux", "quatre-vingt-dix-sept"),
  except where "et" joins them: 21, 31, 41, 51, 61 and 71 ("vingt et un", "soixante et onze"),
  but not 81 and 91 ("quatre-vingt-un", "quatre-vingt-onze");
- 70 to 79 count on from sixty ("soixante-dix", "soixante-douze"), 90 to 99 from eighty
  ("quatre-vingt-dix", "quatre-vingt-dix-neuf");
- "vingt" in "quatre-vingts" and "cent" in "deux cents" take a plural s only when multiplied and
  when nothing follows them ("quatre-vingt-un", "deux cent un");
- 100 is "cent" and 1000 is "mille", never "un cent" or "un mille";
- "mille" never takes an s ("deux mille").
Everything else (hundreds from units, thousands from units) is separated by single spaces.

The TSV files written by `scripts/make_numbers.py` hold these real spellings, hyphens included.
Whether a hyphen becomes its own "-" token is the data pipeline's choice, made in the config,
not something we bake into the files.
"""

ENGLISH_UNITS = ["", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
ENGLISH_TEENS = ["ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
                 "seventeen", "eighteen", "nineteen"]
ENGLISH_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty",
                "ninety"]

# French has a single word for every number up to 16; 17, 18 and 19 are built as "ten-seven".
FRENCH_UNDER_17 = ["", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf",
                   "dix", "onze", "douze", "treize", "quatorze", "quinze", "seize"]
# Only 20 to 60 have a tens word of their own; 70 and 90 are built from 60 and 80 below.
FRENCH_TENS = ["", "", "vingt", "trente", "quarante", "cinquante", "soixante"]


def _check_range(n: int) -> None:
    if not 1 <= n <= 9999:
        raise ValueError(f"number words are defined for 1..9999, got {n}")


def _english_under_100(n: int) -> str:
    """Spell 1..99 in English."""
    if n < 10:
        return ENGLISH_UNITS[n]
    if n < 20:
        return ENGLISH_TEENS[n - 10]
    tens, units = divmod(n, 10)
    if units == 0:
        return ENGLISH_TENS[tens]
    return f"{ENGLISH_TENS[tens]} {ENGLISH_UNITS[units]}"


def english(n: int) -> str:
    """Spell n (1 <= n <= 9999) in English: 2019 -> "two thousand nineteen"."""
    _check_range(n)
    thousands, rest = divmod(n, 1000)
    hundreds, under_100 = divmod(rest, 100)
    words = []
    if thousands:
        words += [ENGLISH_UNITS[thousands], "thousand"]
    if hundreds:
        words += [ENGLISH_UNITS[hundreds], "hundred"]
    if under_100:
        words.append(_english_under_100(under_100))
    return " ".join(words)


def _french_under_20(n: int) -> str:
    """Spell 1..19 in French."""
    if n <= 16:
        return FRENCH_UNDER_17[n]
    return f"dix-{FRENCH_UNDER_17[n - 10]}"


def _french_under_100(n: int) -> str:
    """Spell 1..99 in French."""
    if n < 20:
        return _french_under_20(n)
    if n >= 80:
        # Eighty is "four twenties". Its s marks the plural only when the number ends there;
        # 81 and 91 take a hyphen, not "et", unlike every other tens word.
        if n == 80:
            return "quatre-vingts"
        return f"quatre-vingt-{_french_under_20(n - 80)}"
    # From here on 20 <= n < 80. We split 70..79 as sixty plus 10..19 rather than seven tens.
    tens, units = divmod(n, 10)
    if tens == 7:
        tens, units = 6, units + 10
    if units == 0:
        return FRENCH_TENS[tens]
    if units in (1, 11):
        return f"{FRENCH_TENS[tens]} et {_french_under_20(units)}"
    return f"{FRENCH_TENS[tens]}-{_french_under_20(units)}"


def french(n: int) -> str:
    """Spell n (1 <= n <= 9999) in traditional French: 1080 -> "mille quatre-vingts"."""
    _check_range(n)
    thousands, rest = divmod(n, 1000)
    hundreds, under_100 = divmod(rest, 100)
    words = []
    # "mille" never takes "un" before it and never takes an s.
    if thousands > 1:
        words.append(FRENCH_UNDER_17[thousands])
    if thousands:
        words.append("mille")
    # "cent" likewise drops "un"; when multiplied it takes an s only if nothing follows.
    if hundreds > 1:
        words.append(FRENCH_UNDER_17[hundreds])
    if hundreds:
        words.append("cents" if hundreds > 1 and under_100 == 0 else "cent")
    if under_100:
        words.append(_french_under_100(under_100))
    return " ".join(words)
