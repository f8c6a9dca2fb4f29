"""Write the English-to-French phrases data set: train.tsv, valid.tsv and test.tsv.

Each line is one sentence pair `english<TAB>french`, in UTF-8, made from a small grammar:

    sentence     = subject verb                         "the cat sleeps"
                 | subject verb object                  "the cat sees the red car"
    and either may be negated                           "the cats do not sleep"

    noun phrase  = determiner [adjective] [adjective] noun

The French side follows these rules, one function each below:

 1. Articles agree with the noun (`determiner`): "the" is le (masculine), la (feminine) or
    les (plural); "a" is un or une; "this" is ce or cette, and "these" is ces.
 2. Adjectives agree with the noun in gender and number (`agree`): petit, petite, petits,
    petites. Some are irregular (vieux, vieille, vieux, vieilles) or do not change with gender
    (rouge, jeune); we list every form in the adjective table.
 3. Adjective placement (`french_noun_phrase`): a few common adjectives of size, age and
    beauty come before the noun, as in English (la petite maison); every other adjective
    follows it (la voiture rouge), so the order of the words crosses. A noun phrase has at most
    one adjective, or one of each kind when the second is a colour (the small red car -> la
    petite voiture rouge), the order English speakers use.
 4. Verbs agree with the subject (`conjugate`): the cat sleeps -> le chat dort, the cats
    sleep -> les chats dorment.
 5. Negation (`negate`): "does not" / "do not" becomes ne ... pas around the verb: the dog does
    not eat -> le chien ne mange pas.
 6. Words before a vowel (`starts_with_vowel_sound`). A word starting with a vowel or a mute h
    changes the word before it:
      - elision (`elide`): le, la -> l' and ne -> n', written joined to the next word
        (l'arbre, l'école, l'homme, n'aime);
      - ce -> cet, and the masculine singular beau, vieux, nouveau -> bel, vieil, nouvel
        (cet arbre, le vieil homme), while feminines and plurals keep their forms (la vieille
        école, les vieux arbres);
      - an aspirated h ("hibou") counts as a consonant: le hibou, ce hibou, le vieux hibou.
    The choice depends on the word that comes next in French, which may be the noun or an
    adjective (l'arbre but le petit arbre), so the model has to look ahead in the source.
 7. Objects take "the", "this" or "these", never "a": after a negation French turns an
    indefinite object into "de" (pas de chien), a rule we leave out.

The English side says "an" before a vowel letter (an old man, an egg) and forms its own
irregular plurals (men, mice, knives), which we list in the noun table.

Nouns, adjectives and verbs carry a kind (person, animal, thing), so that only sensible pairs
are drawn: people and animals sleep, things do not; colours describe animals and things.

The splits. Before drawing sentences we set aside some (noun, adjective) pairs: those marked
for the test set appear only in test sentences, and those marked for validation only in
validation sentences. Every test sentence holds at least one such pair that training never
showed, so test exact match measures whether the model composes what it learnt (the gender of
"voiture", the forms of "vert") rather than recalls a sentence. No sentence appears twice.
The output depends only on the seed, so running the script twice gives the same bytes;
tests/test_phrases.py checks exactly that.

    python scripts/make_phrases.py [--out data/phrases] [--seed 0]
"""

import argparse
import random
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

# Tens of thousands of pairs to learn from, and enough held-out sentences that exact match is
# measured to within about a percent. The test set is larger than validation because it is the
# number we report.
SPLIT_SIZES = {"train": 30000, "valid": 1000, "test": 2000}
# The share of (noun, adjective) pairs kept out of training for each held-out split: enough
# pairs that every adjective and most nouns meet an unseen partner in test, few enough that
# training still shows each noun with most of its adjectives.
HELD_OUT_PAIR_SHARE = {"valid": 0.06, "test": 0.08}
# Things appear only as objects, so we give transitive verbs more than half the sentences;
# otherwise the forty-odd thing nouns would each be seen a few times less than the animals.
TRANSITIVE_SHARE = 0.65
# Negated sentences are frequent enough that ne ... pas is met with every verb many times.
NEGATED_SHARE = 0.4

PERSON, ANIMAL, THING = "person", "animal", "thing"
ANIMATE = (PERSON, ANIMAL)


@dataclass(frozen=True)
class Noun:
    en: str
    en_plural: str
    fr: str
    fr_plural: str
    gender: str  # "m" or "f"
    kind: str  # PERSON, ANIMAL or THING


@dataclass(frozen=True)
class Adjective:
    en: str
    before_noun: bool  # True: la petite maison; False: la voiture rouge
    forms: tuple  # (masculine, feminine, masculine plural, feminine plural)
    kinds: tuple  # the kinds of noun it describes
    before_vowel: str = ""  # the masculine singular before a vowel sound (bel), if different
    colour: bool = False  # a colour may follow another adjective (the small red car)


@dataclass(frozen=True)
class Verb:
    en: str  # third person singular: "sleeps"
    en_base: str  # after "they" and "does not": "sleep"
    fr: str  # third person singular: "dort"
    fr_plural: str  # third person plural: "dorment"
    subjects: tuple  # the kinds of noun that may do it
    objects: tuple = ()  # the kinds of noun it may take as object; () means none


# English, English plural, French, French plural, gender, kind. Plurals are written out, the
# irregular ones included (men, mice, chevaux, oiseaux, souris, ours), so the table is the
# single place to check them.
NOUNS = [
    Noun("man", "men", "homme", "hommes", "m", PERSON),  # mute h: l'homme
    Noun("woman", "women", "femme", "femmes", "f", PERSON),
    Noun("boy", "boys", "garçon", "garçons", "m", PERSON),
    Noun("girl", "girls", "fille", "filles", "f", PERSON),
    Noun("child", "children", "enfant", "enfants", "m", PERSON),
    Noun("baby", "babies", "bébé", "bébés", "m", PERSON),
    Noun("king", "kings", "roi", "rois", "m", PERSON),
    Noun("queen", "queens", "reine", "reines", "f", PERSON),
    Noun("friend", "friends", "ami", "amis", "m", PERSON),
    Noun("actor", "actors", "acteur", "acteurs", "m", PERSON),
    Noun("actress", "actresses", "actrice", "actrices", "f", PERSON),
    Noun("uncle", "uncles", "oncle", "oncles", "m", PERSON),
    Noun("aunt", "aunts", "tante", "tantes", "f", PERSON),
    Noun("brother", "brothers", "frère", "frères", "m", PERSON),
    Noun("sister", "sisters", "sœur", "sœurs", "f", PERSON),
    Noun("father", "fathers", "père", "pères", "m", PERSON),
    Noun("mother", "mothers", "mère", "mères", "f", PERSON),
    Noun("doctor", "doctors", "médecin", "médecins", "m", PERSON),
    Noun("engineer", "engineers", "ingénieur", "ingénieurs", "m", PERSON),
    Noun("cat", "cats", "chat", "chats", "m", ANIMAL),
    Noun("dog", "dogs", "chien", "chiens", "m", ANIMAL),
    Noun("horse", "horses", "cheval", "chevaux", "m", ANIMAL),
    Noun("bird", "birds", "oiseau", "oiseaux", "m", ANIMAL),
    Noun("mouse", "mice", "souris", "souris", "f", ANIMAL),
    Noun("cow", "cows", "vache", "vaches", "f", ANIMAL),
    Noun("wolf", "wolves", "loup", "loups", "m", ANIMAL),
    Noun("fox", "foxes", "renard", "renards", "m", ANIMAL),
    Noun("duck", "ducks", "canard", "canards", "m", ANIMAL),
    Noun("rabbit", "rabbits", "lapin", "lapins", "m", ANIMAL),
    Noun("goat", "goats", "chèvre", "chèvres", "f", ANIMAL),
    Noun("hen", "hens", "poule", "poules", "f", ANIMAL),
    Noun("frog", "frogs", "grenouille", "grenouilles", "f", ANIMAL),
    Noun("turtle", "turtles", "tortue", "tortues", "f", ANIMAL),
    Noun("lion", "lions", "lion", "lions", "m", ANIMAL),
    Noun("snake", "snakes", "serpent", "serpents", "m", ANIMAL),
    Noun("elephant", "elephants", "éléphant", "éléphants", "m", ANIMAL),
    Noun("eagle", "eagles", "aigle", "aigles", "m", ANIMAL),
    Noun("bear", "bears", "ours", "ours", "m", ANIMAL),
    Noun("animal", "animals", "animal", "animaux", "m", ANIMAL),
    Noun("owl", "owls", "hibou", "hiboux", "m", ANIMAL),  # aspirated h: le hibou
    Noun("goose", "geese", "oie", "oies", "f", ANIMAL),
    Noun("bee", "bees", "abeille", "abeilles", "f", ANIMAL),
    Noun("spider", "spiders", "araignée", "araignées", "f", ANIMAL),
    Noun("ant", "ants", "fourmi", "fourmis", "f", ANIMAL),
    Noun("house", "houses", "maison", "maisons", "f", THING),
    Noun("car", "cars", "voiture", "voitures", "f", THING),
    Noun("book", "books", "livre", "livres", "m", THING),
    Noun("table", "tables", "table", "tables", "f", THING),
    Noun("chair", "chairs", "chaise", "chaises", "f", THING),
    Noun("door", "doors", "porte", "portes", "f", THING),
    Noun("window", "windows", "fenêtre", "fenêtres", "f", THING),
    Noun("boat", "boats", "bateau", "bateaux", "m", THING),
    Noun("hat", "hats", "chapeau", "chapeaux", "m", THING),
    Noun("cake", "cakes", "gâteau", "gâteaux", "m", THING),
    Noun("castle", "castles", "château", "châteaux", "m", THING),
    Noun("knife", "knives", "couteau", "couteaux", "m", THING),
    Noun("painting", "paintings", "tableau", "tableaux", "m", THING),
    Noun("newspaper", "newspapers", "journal", "journaux", "m", THING),
    Noun("apple", "apples", "pomme", "pommes", "f", THING),
    Noun("flower", "flowers", "fleur", "fleurs", "f", THING),
    Noun("bottle", "bottles", "bouteille", "bouteilles", "f", THING),
    Noun("key", "keys", "clé", "clés", "f", THING),
    Noun("ball", "balls", "ballon", "ballons", "m", THING),
    Noun("bicycle", "bicycles", "vélo", "vélos", "m", THING),
    Noun("garden", "gardens", "jardin", "jardins", "m", THING),
    Noun("letter", "letters", "lettre", "lettres", "f", THING),
    Noun("umbrella", "umbrellas", "parapluie", "parapluies", "m", THING),
    Noun("glass", "glasses", "verre", "verres", "m", THING),
    Noun("box", "boxes", "boîte", "boîtes", "f", THING),
    Noun("shirt", "shirts", "chemise", "chemises", "f", THING),
    Noun("bag", "bags", "sac", "sacs", "m", THING),
    Noun("lamp", "lamps", "lampe", "lampes", "f", THING),
    Noun("train", "trains", "train", "trains", "m", THING),
    Noun("mirror", "mirrors", "miroir", "miroirs", "m", THING),
    Noun("bridge", "bridges", "pont", "ponts", "m", THING),
    Noun("tree", "trees", "arbre", "arbres", "m", THING),
    Noun("plane", "planes", "avion", "avions", "m", THING),
    Noun("hotel", "hotels", "hôtel", "hôtels", "m", THING),  # mute h: l'hôtel
    Noun("egg", "eggs", "œuf", "œufs", "m", THING),
    Noun("school", "schools", "école", "écoles", "f", THING),
    Noun("church", "churches", "église", "églises", "f", THING),
    Noun("island", "islands", "île", "îles", "f", THING),
    Noun("star", "stars", "étoile", "étoiles", "f", THING),
    Noun("clock", "clocks", "horloge", "horloges", "f", THING),  # mute h: l'horloge
    Noun("plate", "plates", "assiette", "assiettes", "f", THING),
    Noun("wardrobe", "wardrobes", "armoire", "armoires", "f", THING),
    Noun("orange", "oranges", "orange", "oranges", "f", THING),
]


def adjective(en, forms, kinds, before_noun=False, before_vowel="", colour=False):
    return Adjective(en, before_noun, tuple(forms.split()), kinds, before_vowel, colour)


# English, then the French masculine, feminine, masculine plural and feminine plural.
ADJECTIVES = [
    # Before the noun. We leave people out of "small" and "big": "un petit ami" is a
    # boyfriend and "un grand homme" a great man, not what the English says.
    adjective("small", "petit petite petits petites", (ANIMAL, THING), before_noun=True),
    adjective("big", "grand grande grands grandes", (ANIMAL, THING), before_noun=True),
    adjective("old", "vieux vieille vieux vieilles", (PERSON, ANIMAL, THING), before_noun=True, before_vowel="vieil"),
    adjective("beautiful", "beau belle beaux belles", (PERSON, ANIMAL, THING), before_noun=True, before_vowel="bel"),
    adjective("new", "nouveau nouvelle nouveaux nouvelles", (THING,), before_noun=True, before_vowel="nouvel"),
    adjective("young", "jeune jeune jeunes jeunes", ANIMATE, before_noun=True),
    adjective("pretty", "joli jolie jolis jolies", (ANIMAL, THING), before_noun=True),
    # After the noun: colours.
    adjective("black", "noir noire noirs noires", (ANIMAL, THING), colour=True),
    adjective("white", "blanc blanche blancs blanches", (ANIMAL, THING), colour=True),
    adjective("grey", "gris grise gris grises", (ANIMAL, THING), colour=True),
    adjective("brown", "brun brune bruns brunes", (ANIMAL, THING), colour=True),
    adjective("red", "rouge rouge rouges rouges", (THING,), colour=True),
    adjective("green", "vert verte verts vertes", (THING,), colour=True),
    adjective("blue", "bleu bleue bleus bleues", (THING,), colour=True),
    adjective("yellow", "jaune jaune jaunes jaunes", (THING,), colour=True),
    # After the noun: how a person or an animal is.
    adjective("happy", "heureux heureuse heureux heureuses", ANIMATE),
    adjective("sad", "triste triste tristes tristes", ANIMATE),
    adjective("tired", "fatigué fatiguée fatigués fatiguées", ANIMATE),
    adjective("lazy", "paresseux paresseuse paresseux paresseuses", ANIMATE),
    adjective("clever", "intelligent intelligente intelligents intelligentes", ANIMATE),
    adjective("famous", "célèbre célèbre célèbres célèbres", (PERSON, THING)),
    # After the noun: how a thing is.
    adjective("broken", "cassé cassée cassés cassées", (THING,)),
    adjective("heavy", "lourd lourde lourds lourdes", (THING,)),
    adjective("round", "rond ronde ronds rondes", (THING,)),
    adjective("empty", "vide vide vides vides", (THING,)),
    adjective("expensive", "cher chère chers chères", (THING,)),
    adjective("dirty", "sale sale sales sales", (THING,)),
]

# English singular and base forms, French third person singular and plural, who may do it and,
# for a transitive verb, what to. Verbs starting with a vowel sound (aime, écoute, hésite, a)
# give the negation its elided form: n'aime pas.
VERBS = [
    Verb("sleeps", "sleep", "dort", "dorment", ANIMATE),
    Verb("eats", "eat", "mange", "mangent", ANIMATE),
    Verb("runs", "run", "court", "courent", ANIMATE),
    Verb("plays", "play", "joue", "jouent", ANIMATE),
    Verb("walks", "walk", "marche", "marchent", ANIMATE),
    Verb("swims", "swim", "nage", "nagent", ANIMATE),
    Verb("jumps", "jump", "saute", "sautent", ANIMATE),
    Verb("sings", "sing", "chante", "chantent", ANIMATE),
    Verb("drinks", "drink", "boit", "boivent", ANIMATE),
    Verb("comes", "come", "vient", "viennent", ANIMATE),
    Verb("leaves", "leave", "part", "partent", ANIMATE),
    Verb("falls", "fall", "tombe", "tombent", ANIMATE),
    Verb("waits", "wait", "attend", "attendent", ANIMATE),
    Verb("arrives", "arrive", "arrive", "arrivent", ANIMATE),
    Verb("listens", "listen", "écoute", "écoutent", ANIMATE),
    Verb("hesitates", "hesitate", "hésite", "hésitent", ANIMATE),
    Verb("obeys", "obey", "obéit", "obéissent", ANIMATE),
    Verb("works", "work", "travaille", "travaillent", (PERSON,)),
    Verb("laughs", "laugh", "rit", "rient", (PERSON,)),
    Verb("sees", "see", "voit", "voient", ANIMATE, (PERSON, ANIMAL, THING)),
    Verb("watches", "watch", "regarde", "regardent", ANIMATE, (PERSON, ANIMAL, THING)),
    Verb("finds", "find", "trouve", "trouvent", ANIMATE, (PERSON, ANIMAL, THING)),
    Verb("looks for", "look for", "cherche", "cherchent", ANIMATE, (PERSON, ANIMAL, THING)),
    Verb("likes", "like", "aime", "aiment", ANIMATE, (PERSON, ANIMAL, THING)),
    Verb("follows", "follow", "suit", "suivent", ANIMATE, ANIMATE),
    Verb("hears", "hear", "entend", "entendent", ANIMATE, ANIMATE),
    Verb("wants", "want", "veut", "veulent", ANIMATE, (ANIMAL, THING)),
    Verb("has", "have", "a", "ont", ANIMATE, (ANIMAL, THING)),
    Verb("carries", "carry", "porte", "portent", ANIMATE, (THING,)),
    Verb("takes", "take", "prend", "prennent", ANIMATE, (THING,)),
    Verb("knows", "know", "connaît", "connaissent", (PERSON,), ANIMATE),
    Verb("draws", "draw", "dessine", "dessinent", (PERSON,), (PERSON, ANIMAL, THING)),
    Verb("buys", "buy", "achète", "achètent", (PERSON,), (ANIMAL, THING)),
    Verb("loses", "lose", "perd", "perdent", (PERSON,), (THING,)),
    Verb("visits", "visit", "visite", "visitent", (PERSON,), (THING,)),
    Verb("washes", "wash", "lave", "lavent", (PERSON,), (ANIMAL, THING)),
]

# Words that start with an h but take le, ce and vieux like a consonant ("h aspiré").
ASPIRATED_H = {"hibou", "hiboux"}
FRENCH_VOWELS = "aàâeéèêiîoôuœ"


@dataclass(frozen=True)
class NounPhrase:
    determiner: str  # "the", "a" or "this"; "this" is "these" in the plural
    noun: Noun
    plural: bool
    adjectives: tuple  # at most two: a before-noun adjective, then a colour


@dataclass(frozen=True)
class Sentence:
    subject: NounPhrase
    verb: Verb
    negated: bool
    object: NounPhrase = None  # None for an intransitive verb


def starts_with_vowel_sound(word):
    """True for a French word before which le, la and ne elide: a vowel or a mute h."""
    if word in ASPIRATED_H:
        return False
    return word[0] in FRENCH_VOWELS or word[0] == "h"


def determiner(which, gender, plural, next_word):
    """Rule 1: le/la/les, un/une, ce/cet/cette/ces, chosen by the noun's gender and number.
    "ce" becomes "cet" before a vowel sound; le and la are elided later, by `elide`."""
    if plural:
        return {"the": "les", "this": "ces"}[which]
    if gender == "f":
        return {"the": "la", "a": "une", "this": "cette"}[which]
    if which == "this" and starts_with_vowel_sound(next_word):
        return "cet"
    return {"the": "le", "a": "un", "this": "ce"}[which]


def agree(adj, gender, plural, next_word=""):
    """Rule 2: the adjective's form for a noun of this gender and number. The masculine
    singular of beau, vieux and nouveau has a form of its own before a vowel sound (bel)."""
    masculine, feminine, masculine_plural, feminine_plural = adj.forms
    if plural:
        return feminine_plural if gender == "f" else masculine_plural
    if gender == "f":
        return feminine
    if adj.before_vowel and next_word and starts_with_vowel_sound(next_word):
        return adj.before_vowel
    return masculine


def french_noun_phrase(phrase):
    """Rule 3: determiner, the adjectives that go before the noun, the noun, then the others.
    We build it from the noun outwards, because each word's form depends on the word after it."""
    gender = phrase.noun.gender
    words = [phrase.noun.fr_plural if phrase.plural else phrase.noun.fr]
    for adj in phrase.adjectives:
        if not adj.before_noun:
            words.append(agree(adj, gender, phrase.plural))
    for adj in reversed(phrase.adjectives):
        if adj.before_noun:
            words.insert(0, agree(adj, gender, phrase.plural, next_word=words[0]))
    words.insert(0, determiner(phrase.determiner, gender, phrase.plural, next_word=words[0]))
    return words


def conjugate(verb, plural):
    """Rule 4: the third person singular or plural of the present tense."""
    return verb.fr_plural if plural else verb.fr


def negate(verb_form):
    """Rule 5: ne before the verb and pas after it (ne may then be elided to n')."""
    return ["ne", verb_form, "pas"]


def elide(words):
    """Rule 6: le, la and ne lose their vowel before a vowel sound and join the next word:
    ["le", "arbre"] -> ["l'arbre"], ["ne", "aime"] -> ["n'aime"]."""
    out = []
    for word in words:
        if out and out[-1] in ("le", "la", "ne") and starts_with_vowel_sound(word):
            word = out.pop()[0] + "'" + word
        out.append(word)
    return out


def french(sentence):
    words = french_noun_phrase(sentence.subject)
    verb_form = conjugate(sentence.verb, sentence.subject.plural)
    words += negate(verb_form) if sentence.negated else [verb_form]
    if sentence.object is not None:
        words += french_noun_phrase(sentence.object)
    return " ".join(elide(words))


def english_noun_phrase(phrase):
    words = [adj.en for adj in phrase.adjectives] + [phrase.noun.en_plural if phrase.plural else phrase.noun.en]
    if phrase.determiner == "a":
        # Every word in our tables that starts with a vowel letter also starts with a vowel sound.
        article = "an" if words[0][0] in "aeiou" else "a"
    elif phrase.determiner == "this":
        article = "these" if phrase.plural else "this"
    else:
        article = "the"
    return [article] + words


def english(sentence):
    words = english_noun_phrase(sentence.subject)
    verb = sentence.verb
    if sentence.negated:
        words += ["do" if sentence.subject.plural else "does", "not", verb.en_base]
    else:
        words.append(verb.en_base if sentence.subject.plural else verb.en)
    if sentence.object is not None:
        words += english_noun_phrase(sentence.object)
    return " ".join(words)


def describes(adj, noun):
    return noun.kind in adj.kinds


def draw_adjectives(rng, noun):
    """None, one adjective, or a before-noun adjective followed by a colour, each about as
    often, among those that can describe this noun."""
    fitting = [adj for adj in ADJECTIVES if describes(adj, noun)]
    shape = rng.choice(["none", "one", "one", "two"])
    if shape == "none":
        return ()
    if shape == "two":
        before = [adj for adj in fitting if adj.before_noun]
        colours = [adj for adj in fitting if adj.colour]
        if before and colours:
            return (rng.choice(before), rng.choice(colours))
    return (rng.choice(fitting),)


def draw_noun_phrase(rng, kinds, determiners):
    noun = rng.choice([n for n in NOUNS if n.kind in kinds])
    which = rng.choice(determiners)
    plural = which != "a" and rng.random() < 0.5
    return NounPhrase(which, noun, plural, draw_adjectives(rng, noun))


def draw_sentence(rng):
    transitive = rng.random() < TRANSITIVE_SHARE
    verb = rng.choice([v for v in VERBS if bool(v.objects) == transitive])
    subject = draw_noun_phrase(rng, verb.subjects, ["the", "a", "this"])
    # Rule 7: no "a" before an object.
    obj = draw_noun_phrase(rng, verb.objects, ["the", "this"]) if verb.objects else None
    return Sentence(subject, verb, negated=rng.random() < NEGATED_SHARE, object=obj)


def noun_adjective_pairs(sentence):
    """The (noun, adjective) pairs a sentence shows, as English words."""
    phrases = [sentence.subject] + ([sentence.object] if sentence.object else [])
    return {(phrase.noun.en, adj.en) for phrase in phrases for adj in phrase.adjectives}


def hold_out_pairs(rng):
    """Split the possible (noun, adjective) pairs: {"valid": set, "test": set}; the rest train."""
    pairs = [(n.en, a.en) for n in NOUNS for a in ADJECTIVES if describes(a, n)]
    rng.shuffle(pairs)
    held, start = {}, 0
    for split, share in HELD_OUT_PAIR_SHARE.items():
        count = round(share * len(pairs))
        held[split] = set(pairs[start:start + count])
        start += count
    return held


def which_split(sentence, held):
    """The split a sentence may go to, or None if it shows pairs held out for both."""
    pairs = noun_adjective_pairs(sentence)
    in_valid, in_test = bool(pairs & held["valid"]), bool(pairs & held["test"])
    if in_valid and in_test:
        return None
    return "test" if in_test else "valid" if in_valid else "train"


def make_splits(seed):
    """{split: [(english, french), ...]} with SPLIT_SIZES pairs each, no sentence twice."""
    rng = random.Random(seed)
    held = hold_out_pairs(rng)
    splits = {split: [] for split in SPLIT_SIZES}
    seen = set()
    # A few million draws is far more than filling the splits needs; the limit only turns a
    # grammar too small for SPLIT_SIZES into an error instead of an endless loop.
    for _ in range(5_000_000):
        if all(len(splits[s]) == size for s, size in SPLIT_SIZES.items()):
            return splits
        sentence = draw_sentence(rng)
        split = which_split(sentence, held)
        en = english(sentence)
        if split is None or len(splits[split]) == SPLIT_SIZES[split] or en in seen:
            continue
        seen.add(en)
        splits[split].append((en, french(sentence)))
    raise RuntimeError(f"the grammar did not yield {SPLIT_SIZES} distinct sentences")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "data" / "phrases",
                        help="directory to write the three .tsv files into")
    parser.add_argument("--seed", type=int, default=0, help="seed for the held-out pairs and the sentences")
    args = parser.parse_args()

    splits = make_splits(args.seed)
    for split, pairs in splits.items():
        path = args.out / f"{split}.tsv"
        try:
            args.out.mkdir(parents=True, exist_ok=True)
            # newline="\n" keeps the bytes identical on every platform.
            with open(path, "w", encoding="utf-8", newline="\n") as f:
                for en, fr in pairs:
                    f.write(f"{en}\t{fr}\n")
        except OSError as e:
            parser.exit(2, f"make_phrases: cannot write {path} ({e.strerror})\n")
        print(f"wrote {len(pairs)} pairs to {path}")


if __name__ == "__main__":
    main()
