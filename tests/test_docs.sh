#!/usr/bin/env bash
# test_docs.sh - the manual stays true: the generated reference pages (docs/reference-c.md from
# include/ragcore.h, docs/reference-http.md from the OpenAPI document the server serves) and
# the guides' generated option tables are regenerated and must equal the committed files; every
# curl example's request is sent to a real server and must succeed; and every relative link in
# docs/*.md and README.md (file and #anchor) must resolve.
set -euo pipefail
BIN=${RAGCORE_BIN:?run through ctest}
SRC=${RAGCORE_SOURCE_DIR:?run through ctest}
fail() { echo "FAIL: $*"; exit 1; }
export PYTHONDONTWRITEBYTECODE=1  # nothing written into the source tree

python3 "$SRC/tools/gen_api_docs.py" --server "$BIN/ragcore-server" --check --run-examples ||
    fail "generated documentation is stale or an example failed (see above)"

python3 - "$SRC" <<'PY' || fail "broken links (see above)"
import os, re, sys
root = sys.argv[1]
sys.path.insert(0, os.path.join(root, "tools"))
from gen_api_docs import slug

def anchors(path):
    text = re.sub(r"^```.*?^```", "", open(path, encoding="utf-8").read(), flags=re.S | re.M)
    seen, out = {}, set()
    for h in re.findall(r"^#{1,6} (.+?)\s*#*$", text, flags=re.M):
        s = slug(re.sub(r"`", "", h))
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else "%s-%d" % (s, n))
    return out

pages = [os.path.join(root, "README.md")] + sorted(
    os.path.join(root, "docs", f) for f in os.listdir(os.path.join(root, "docs")) if f.endswith(".md"))
bad = 0
for page in pages:
    text = open(page, encoding="utf-8").read()
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)   # code blocks
    text = re.sub(r"`[^`\n]*`", "", text)                        # code spans
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):              # http:, mailto:, ...
            continue
        path, _, frag = target.partition("#")
        dest = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
        rel = os.path.relpath(page, root)
        if not os.path.exists(dest):
            print("%s: link to %s: no such file" % (rel, target)); bad += 1
        elif frag and dest.endswith(".md") and frag not in anchors(dest):
            print("%s: link to %s: no heading with that anchor" % (rel, target)); bad += 1
sys.exit(1 if bad else 0)
PY
echo "docs: generated pages current, examples ran, links resolve"
