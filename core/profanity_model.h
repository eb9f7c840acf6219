/* profanity_model.h - the linear toxicity classifier: TF-IDF features and calibrated linear
 * SVMs converted from scikit-learn (alt-profanity-check), scored in C exactly as the
 * reference computes them. */
#ifndef RAG_PROFANITY_MODEL_H
#define RAG_PROFANITY_MODEL_H

#include <stddef.h>

typedef struct rag_linear_model rag_linear_model;

/* Loads a model in ragcore's linear text format (written by tools/profanity_convert.py;
 * the format is described there). Settings other than the ones implemented (lower-casing,
 * the token pattern (?u)\b\w\w+\b, unigrams, l2 norm, raw term frequencies) are refused.
 * Errors: RAG_EIO, RAG_EPARSE (naming the line), RAG_EUNSUPPORTED, RAG_ENOMEM. Free with
 * rag_linear_model_free (NULL-safe). */
int rag_linear_model_load(const char *path, rag_linear_model **out);
void rag_linear_model_free(rag_linear_model *m);

/* Vocabulary size and number of calibrated classifiers. Can't fail. */
size_t rag_linear_model_terms(const rag_linear_model *m);
size_t rag_linear_model_classifiers(const rag_linear_model *m);

/* The probability that text[0, len) (UTF-8) is offensive, as scikit-learn's
 * CalibratedClassifierCV.predict_proba computes it: Python's str.lower(), words of two or
 * more \w characters (letters, digits, '_'), term counts times idf, l2-normalised, each
 * classifier's decision value f through its sigmoid 1 / (1 + exp(a f + b)), averaged. The
 * reference's decision (predict) is p > 0.5. Invalid UTF-8 bytes separate words.
 * Errors: RAG_ENOMEM. */
int rag_linear_model_score(const rag_linear_model *m, const char *text, size_t len, double *p);

#endif
