#!/usr/bin/env python3
"""make_fixtures.py - writes the neural embedder's reference fixtures to tests/data (run once).

Creates a throwaway virtual environment with the reference stack (Hugging Face tokenizers /
transformers and sentence-transformers on CPU), then, for each model directory given, writes:

  tests/data/tokenizer_cases.json   token ids of >= 200 tricky strings, truncated at 256 and
                                    512 tokens (the two models share the BERT uncased vocab)
  tests/data/embed_<model>.json     >= 50 texts (documents and queries) and their reference
  tests/data/embed_<model>.f32      embeddings, little-endian float32, n x dim

usage: tools/make_fixtures.py --model all-MiniLM-L6-v2=DIR [--model bge-small-en-v1.5=DIR]
                              [--venv DIR] [--out tests/data]
A model DIR is a Hugging Face model directory (`ragcore model pull` puts them in
${XDG_CACHE_HOME:-~/.cache}/ragcore/models/NAME). --venv reuses an existing environment.
"""
import argparse
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile

REF_PACKAGES = ["torch", "transformers", "tokenizers", "sentence-transformers"]
INSIDE = "RAGCORE_FIXTURES_INSIDE_VENV"
QUERY_INSTRUCTIONS = {"bge-small-en-v1.5": "Represent this sentence for searching relevant passages: "}


def tricky_strings():
    """>= 200 strings that exercise every step of BERT's normaliser and WordPiece."""
    s = [
        "", " ", "   ", "\t\n\r", "\u3000\u00a0\u2028", "\x00\x01\x02", "\ufffd", "a\x00b",
        "Hello, world!", "HELLO WORLD", "don't stop-believing...", "U.S.A. vs. u.s.a.",
        "résumé café naïve façade", "Ångström Øresund Łódź", "Crème Brûlée", "ÀÁÂÃÄÅ àáâãäå",
        "İstanbul ıi İI", "Straße STRASSE", "ﬁnancial ﬂow", "Ⅻ ⅻ ① ²³", "ＦＵＬＬ ｗｉｄｔｈ",
        "ΑΒΓ Σίσυφος ὀδυσσεύς", "Москва ЁЖИК ёжик", "مرحبا بالعالم", "שלום עולם",
        "नमस्ते दुनिया", "สวัสดีครับ", "안녕하세요 세계", "こんにちは世界", "你好，世界！",
        "中文English混合text", "日本語のテキストと漢字", "𠀀𠀁 𪜀 𫝀 𬺰", "豈 更 車",
        "emoji 😀😃 👍🏽 👨‍👩‍👧‍👦 🇫🇷", "❤️ ☕ ✈️", "zero\u200bwidth\u200cjoin\u200d",
        "soft\u00adhyphen", "\ufeffBOM at start", "private \ue000\uf8ff use", "unassigned \u0378\u0379",
        "tab\tseparated\tvalues", "line\nbreaks\r\nand\rreturns", "vertical\x0btab\x0cfeed",
        "next\x85line", "del\x7fchar", "bell\x07char", "esc\x1b[31mred\x1b[0m",
        "!!!???...", "---===+++", "((([[[{{{}}}]]])))", "@#$%^&*~`|\\<>", "a-b_c.d,e;f:g",
        "¡¿«»„“”‘’‹›", "—–‐‑‒―", "…‥", "§¶†‡•", "€£¥₹₿ $5.00", "100% 3.14159 1,000,000",
        "2024-01-15T10:30:00Z", "https://example.com/path?q=1&r=2#frag", "user@example.org",
        "C++ C# F# .NET node.js", "def f(x): return x**2", "SELECT * FROM t WHERE a<>b;",
        "[CLS] [SEP] [MASK] [PAD] [UNK]", "text with [MASK] inside", "[mask] lower", "[MASK[MASK]]",
        "##hash ##tags", "#hashtag @mention", "a" * 99, "b" * 100, "c" * 101, "d" * 150,
        "supercalifragilisticexpialidocious", "antidisestablishmentarianism",
        "pneumonoultramicroscopicsilicovolcanoconiosis", "x" * 150 + " short", "é" * 120,
        "日" * 150, "ab" * 75, "unbelievably unrecognizable uncharacteristically",
        "COVID-19 SARS-CoV-2 mRNA-1273", "p53 BRCA1 IL-6 TNF-α β-catenin", "H₂O CO₂ Na⁺ Cl⁻",
        "∑∫∂√∞≈≠≤≥ ∀x∃y", "→ ← ↑ ↓ ⇒", "♠♣♥♦ ♪♫", "© ® ™ ℠", "½ ¼ ¾ ⅓",
        "Ǆ ǅ ǆ ǈ", "ﬀ ﬃ ﬄ", "Å Å Å", "e\u0301 e\u0300\u0301 a\u0308\u0323", "\u0301leading mark",
        "n\u0303o\u0308", "Ĳ ĳ Œ œ Æ æ", "Þorn ðe", "Việt Nam Tiếng Việt", "Ελληνικά κείμενα",
        "ქართული", "Հայերեն", "አማርኛ", "ᚠᛇᚻ", "ꦗꦮ", "𝐁𝐨𝐥𝐝 𝔉𝔯𝔞𝔨𝔱𝔲𝔯", "Ⓐⓑⓒ",
        "mixed Русский and English and 中文 and العربية", "   leading and trailing   ",
        "multiple     spaces     here", "\n\n\nnewlines only\n\n\n", "a\u2003b\u2009c\u202fd",
        "quote's \"double\" `back`", "it's ain't y'all'd've", "e.g. i.e. etc. et al.",
        "Dr. Smith's 2nd-hand 3rd-party", "ÉCOLE NORMALE SUPÉRIEURE", "ǅemal Ǳ",
        "Hangul jamo 한 한", "Thai วันนี้", "Devanagari क्षत्रिय", "Tamil தமிழ்",
        "Khmer ខ្មែរ", "Burmese မြန်မာ", "Tibetan བོད་", "Mongolian ᠮᠣᠩᠭᠣᠯ",
    ]
    # Longer than both max lengths (512 and 256 tokens).
    words = ("the quick brown fox jumps over the lazy dog while researchers measured "
             "cellular responses to oxidative stress in mitochondria").split()
    rnd = random.Random(1234)
    for n in (300, 600, 1200):
        s.append(" ".join(rnd.choice(words) for _ in range(n)))
    s.append("Ünïcödé " * 400)
    s.append("日本語" * 400)
    s.append("!?" * 700)
    # Random mixtures from a pool of tricky code points.
    pool = ("aZé ÅßİıΣσςЖж中日한😀👍🏽‍️\u0301\u0308\t\n\u00a0\u3000\u200b\u00ad!?.,;:-_'\"()[]{}#@$%"
            "^&*+=<>/\\|~`0123456789\x00\x01\x7f\ufffd\ue000")
    for i in range(80):
        n = rnd.randint(1, 60)
        s.append("".join(rnd.choice(pool) for _ in range(n)))
    # Random words with accents and case, joined by varied separators.
    letters = "abcdefghijklmnopqrstuvwxyzàéîõüçñABCDEFGHIJKLMNOPQRSTUVWXYZ"
    for i in range(30):
        ws = ["".join(rnd.choice(letters) for _ in range(rnd.randint(1, 14)))
              for _ in range(rnd.randint(1, 12))]
        s.append(rnd.choice([" ", "-", ", ", "  ", "/", "'"]).join(ws))
    return s


def embed_texts():
    """>= 50 texts for the embedding fixtures: (text, is_query)."""
    docs = [
        "The mitochondrion is the powerhouse of the cell.",
        "Aspirin reduces the risk of heart attack in some patients.",
        "Deep learning models require large amounts of training data.",
        "The Eiffel Tower is located in Paris, France.",
        "Photosynthesis converts light energy into chemical energy.",
        "Vaccines train the immune system to recognise pathogens.",
        "Quantum computers exploit superposition and entanglement.",
        "The stock market fell sharply after the announcement.",
        "Regular exercise improves cardiovascular health.",
        "Café au lait is a French coffee drink with hot milk.",
        "東京は日本の首都です。",
        "Das ist ein deutscher Satz über Straßenbahnen.",
        "El rápido zorro marrón salta sobre el perro perezoso.",
        "Emoji test: I love pizza 🍕 and coffee ☕!",
        "",
        "   ",
        "a",
        "[MASK] tokens and [SEP] inside text",
        "x" * 150,
        "COVID-19 vaccination reduced hospitalisation rates among the elderly.",
        "p53 mutations are common in many human cancers.",
        "The 2nd-generation sequencing platform produced 1.5 million reads per run.",
        "High-fat diets were associated with increased insulin resistance in mice.",
        "Amyloid-β plaques accumulate in the brains of Alzheimer's patients.",
        "Short.",
        "Climate change increases the frequency of extreme weather events.",
        "The Python programming language emphasises readability.",
        "SELECT name FROM users WHERE age > 30;",
        "Water boils at 100 °C at sea level.",
        "Antibiotic resistance is a growing global health threat.",
        "Ünïcödé àccénts ärë strïppéd bÿ thé üncäsëd tökënïzër.",
        "Line one\nLine two\tTabbed",
        "The committee approved the budget for the next fiscal year.",
        "Neurons communicate through electrical and chemical signals.",
        "Gene expression is regulated at multiple levels.",
    ]
    rnd = random.Random(99)
    words = ("protein cell patients study results treatment increased expression cancer risk "
             "analysis clinical effect levels significantly associated model data response").split()
    docs.append(" ".join(rnd.choice(words) for _ in range(400)))   # over 256 and 512 tokens
    docs.append(" ".join(rnd.choice(words) for _ in range(150)))
    docs.append(" ".join(rnd.choice(words) for _ in range(700)))
    queries = [
        "what produces energy in cells",
        "does aspirin prevent heart attacks",
        "capital of France landmark",
        "how do vaccines work",
        "effects of exercise on the heart",
        "p53 cancer mutation frequency",
        "insulin resistance diet mice",
        "Alzheimer amyloid plaques",
        "extreme weather and climate",
        "antibiotic resistance threat",
        "boiling point of water",
        "neuron signalling",
        "gene regulation levels",
        "quantum entanglement computing",
        "日本の首都",
    ]
    return [(t, False) for t in docs] + [(q, True) for q in queries]


def run_inside(args):
    from transformers import AutoTokenizer
    from sentence_transformers import SentenceTransformer
    import numpy as np
    import torch
    torch.set_num_threads(2)
    os.makedirs(args.out, exist_ok=True)
    models = dict(m.split("=", 1) for m in args.model)
    first = next(iter(models.values()))
    tok = AutoTokenizer.from_pretrained(first)
    cases = []
    for text in tricky_strings():
        c = {"text": text}
        for n in (256, 512):
            c["ids_%d" % n] = tok(text, truncation=True, max_length=n)["input_ids"]
        cases.append(c)
    with open(os.path.join(args.out, "tokenizer_cases.json"), "w", encoding="utf-8") as f:
        json.dump({"source": "transformers %s (fast) over %s" % (
            __import__("transformers").__version__, os.path.basename(first.rstrip("/"))),
            "cases": cases}, f, ensure_ascii=True, separators=(",", ":"))
    print("tokenizer cases:", len(cases))
    items = embed_texts()
    for name, d in models.items():
        st = SentenceTransformer(d, device="cpu")
        instr = QUERY_INSTRUCTIONS.get(name, "")
        texts = [(instr + t) if q else t for t, q in items]
        vecs = st.encode(texts, batch_size=16, normalize_embeddings=True, convert_to_numpy=True)
        vecs = np.asarray(vecs, dtype="<f4")
        meta = {"model": name, "dim": int(vecs.shape[1]), "max_seq_length": st.max_seq_length,
                "query_instruction": instr, "texts": [t for t, _ in items],
                "is_query": [q for _, q in items],
                "source": "sentence-transformers %s, torch %s, fp32 CPU" % (
                    __import__("sentence_transformers").__version__, torch.__version__)}
        with open(os.path.join(args.out, "embed_%s.json" % name), "w", encoding="utf-8") as f:
            json.dump(meta, f, ensure_ascii=True, indent=0)
        with open(os.path.join(args.out, "embed_%s.f32" % name), "wb") as f:
            f.write(vecs.tobytes())
        print(name, "embeddings:", vecs.shape)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", action="append", required=True, help="NAME=DIR")
    ap.add_argument("--venv", help="reuse this virtual environment (created when absent)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data"))
    args = ap.parse_args()
    if os.environ.get(INSIDE):
        return run_inside(args)
    tmp = None
    venv = args.venv
    if not venv:
        tmp = tempfile.mkdtemp(prefix="ragcore-fixtures-")
        venv = os.path.join(tmp, "venv")
    try:
        py = os.path.join(venv, "bin", "python")
        if not os.path.exists(py):
            subprocess.check_call([sys.executable, "-m", "venv", venv])
            subprocess.check_call([py, "-m", "pip", "install", "-q"] + REF_PACKAGES)
        env = dict(os.environ, **{INSIDE: "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
        return subprocess.call([py, os.path.abspath(__file__)] + sys.argv[1:], env=env)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main() or 0)
