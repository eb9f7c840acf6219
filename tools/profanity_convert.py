# profanity_convert.py - converts alt-profanity-check's scikit-learn model (TfidfVectorizer +
# CalibratedClassifierCV over LinearSVC, sigmoid calibration) into ragcore's linear text
# format, read by core/profanity_model.c. Run once by `ragcore model pull profanity-check` in
# a throwaway venv; the scoring itself needs no Python.
#
# usage: python profanity_convert.py VECTORIZER.joblib MODEL.joblib OUT.txt
#
# Format (UTF-8 text, one record per line, fields separated by one tab, every number a
# C99 hexadecimal float so that the values are bit-exact):
#   ragcore-tfidf-linear	1
#   lowercase	1            token_pattern	(?u)\b\w\w+\b    ngram	1	1
#   norm	l2               sublinear_tf	0                 classifiers	K
#   classifier	INTERCEPT	SIGMOID_A	SIGMOID_B     (K lines; p = 1 / (1 + exp(A f + B)))
#   terms	N
#   TERM	IDF	COEF_1 ... COEF_K                     (N lines, in column order)
import sys

import joblib


def fail(msg):
    sys.stderr.write("profanity_convert: %s\n" % msg)
    sys.exit(2)


def main():
    if len(sys.argv) != 4:
        fail("usage: profanity_convert.py VECTORIZER MODEL OUT")
    vec = joblib.load(sys.argv[1])
    model = joblib.load(sys.argv[2])
    p = vec.get_params()
    checks = {
        "analyzer": "word", "lowercase": True, "ngram_range": (1, 1), "norm": "l2",
        "preprocessor": None, "strip_accents": None, "sublinear_tf": False,
        "token_pattern": r"(?u)\b\w\w+\b", "tokenizer": None, "use_idf": True, "binary": False,
    }
    for k, want in checks.items():
        if p.get(k) != want:
            fail("vectorizer %s is %r, only %r is supported" % (k, p.get(k), want))
    if type(model).__name__ != "CalibratedClassifierCV" or model.method != "sigmoid":
        fail("model is %s (%s), expected CalibratedClassifierCV with sigmoid calibration"
             % (type(model).__name__, getattr(model, "method", "?")))
    if list(model.classes_) != [0, 1]:
        fail("classes are %r, expected [0, 1]" % (list(model.classes_),))
    cls = []
    for c in model.calibrated_classifiers_:
        est = c.estimator
        if type(est).__name__ != "LinearSVC" or est.coef_.shape[0] != 1:
            fail("base estimator %s with %d rows, expected a binary LinearSVC"
                 % (type(est).__name__, est.coef_.shape[0]))
        if len(c.calibrators) != 1:
            fail("%d calibrators, expected 1" % len(c.calibrators))
        cal = c.calibrators[0]
        cls.append((est.coef_[0], float(est.intercept_[0]), float(cal.a_), float(cal.b_)))
    nterms = len(vec.vocabulary_)
    terms = [None] * nterms
    for t, i in vec.vocabulary_.items():
        if "\t" in t or "\n" in t or terms[i] is not None:
            fail("vocabulary entry %r cannot be written" % t)
        terms[i] = t
    idf = vec.idf_
    with open(sys.argv[3], "w", encoding="utf-8", newline="\n") as f:
        f.write("ragcore-tfidf-linear\t1\n")
        f.write("lowercase\t1\ntoken_pattern\t(?u)\\b\\w\\w+\\b\nngram\t1\t1\n")
        f.write("norm\tl2\nsublinear_tf\t0\nclassifiers\t%d\n" % len(cls))
        for coef, b, a_, b_ in cls:
            f.write("classifier\t%s\t%s\t%s\n" % (b.hex(), a_.hex(), b_.hex()))
        f.write("terms\t%d\n" % nterms)
        for i, t in enumerate(terms):
            f.write(t + "\t" + float(idf[i]).hex() + "\t" +
                    "\t".join(float(c[0][i]).hex() for c in cls) + "\n")


main()
