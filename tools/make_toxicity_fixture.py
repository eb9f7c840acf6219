#!/usr/bin/env python3
"""make_toxicity_fixture.py - writes the toxicity classifier's reference fixture (run once).

Generates texts deterministically (seed 26) and records the probability and decision that
the Python package alt-profanity-check 1.9.1 computes for each:

  tests/data/toxicity_reference.jsonl   one {"text", "p", "label"} object per line

The texts are made here, so the fixture may be committed: edge cases of tokenisation
(Unicode letters and digits, İ, a final Σ, underscores, marks, tabs, empty text) and random
sequences of words drawn from the classifier's own vocabulary, a list of common English
words, random letter strings and numbers, with random case and separators. About a third
carry words of the vocabulary with the strongest positive weights, so both decisions occur.

usage: python make_toxicity_fixture.py [N]    (default 2400; in a venv that has
       alt-profanity-check==1.9.1, scikit-learn==1.9.1 and joblib==1.6.0 installed)
"""
import json
import os
import random
import sys

from profanity_check import predict, predict_prob
from profanity_check import profanity_check as pc

COMMON = ("the of and to in is that it was for on are as with his they at be this have "
          "from or one had by word but not what all were we when your can said there use "
          "an each which she do how their if will up other about out many then them these "
          "so some her would make like him into time has look two more write go see number "
          "no way could people my than first water been call who oil its now find long down "
          "day did get come made may part study cell protein patient results data analysis "
          "model gene expression treatment effect increased significantly").split()

EDGE = [
    "", " ", "\t\n", "a", "ab", "a b c", "!!!", "___", "_a_", "a_b", "9", "99", "x1", "1x",
    "İSTANBUL", "İstanbul is big", "ΟΔΟΣ ΣΟΦΟΣ", "ΣΑΣ", "Σ", "aΣ", "ΑΣ.", "ΑΣ'Α", "naïve café",
    "nai\u0308ve cafe\u0301", "ＦＵＬＬＷＩＤＴＨ text", "日本語のテキスト", "連絡 見学 迷惑",
    "emoji 😀 and 🎉 party", "pokémon josé beyoncé", "POKÉMON JOSÉ", "straße STRASSE",
    "tab\tseparated\twords", "line\nbreaks\r\nhere", "don't can't won't", "e-mail e_mail",
    "mixed CASE Words", "UPPER CASE SHOUTING", "numbers 123 4567 89", "²³ ½ Ⅻ ⑩",
    "\u00a0non\u00a0breaking\u00a0spaces", "zero\u200bwidth\u200bspace", "ǅemal ǈubav",
    "Ⓐⓑ circled", "ﬁnance ﬂow ligatures", "ı dotless i", "K Kelvin sign", "Å angstrom",
]


def vocab_terms():
    v = pc.vectorizer
    terms = sorted(v.vocabulary_, key=v.vocabulary_.get)
    model = pc.model
    import numpy as np
    coef = np.mean([c.estimator.coef_[0] for c in model.calibrated_classifiers_], axis=0)
    order = np.argsort(-coef)
    strong = [terms[i] for i in order[:300]]
    return terms, strong


def random_word(rng, terms, strong, toxic):
    r = rng.random()
    if toxic and r < 0.25:
        w = rng.choice(strong)
    elif r < 0.55:
        w = rng.choice(terms)
    elif r < 0.85:
        w = rng.choice(COMMON)
    elif r < 0.93:
        w = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 9)))
    else:
        w = str(rng.randint(0, 10 ** rng.randint(1, 6)))
    c = rng.random()
    if c < 0.15:
        w = w.upper()
    elif c < 0.35:
        w = w.capitalize()
    return w


def random_text(rng, terms, strong):
    toxic = rng.random() < 0.35
    n = rng.choice([1, 2, 3, 5, 8, 12, 20, 40, 80])
    seps = [" ", " ", " ", "  ", ", ", ". ", "! ", "? ", "\n", "\t", "-", "'", "/", "...",
            " (", ") ", "\"", "#", "@", " _", "*"]
    out = []
    for i in range(n):
        if i:
            out.append(rng.choice(seps))
        out.append(random_word(rng, terms, strong, toxic))
    return "".join(out)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2400
    rng = random.Random(26)
    terms, strong = vocab_terms()
    texts = list(EDGE)
    nonascii = [t for t in terms if not t.isascii()]
    for t in nonascii:
        texts.append("%s %s %s" % (t, t.upper(), rng.choice(COMMON)))
    while len(texts) < n:
        texts.append(random_text(rng, terms, strong))
    probs = predict_prob(texts)
    labels = predict(texts)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data",
                       "toxicity_reference.jsonl")
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        for t, p, y in zip(texts, probs, labels):
            f.write(json.dumps({"text": t, "p": float(p), "label": int(y)}) + "\n")
    print("%d texts, %d positive -> %s" % (len(texts), int(sum(labels)), out))


main()
