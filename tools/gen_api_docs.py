#!/usr/bin/env python3
"""gen_api_docs.py - generates the manual's reference pages from their sources of truth.

  docs/reference-c.md     from include/ragcore.h (its documented declarations, in order)
  docs/reference-http.md  from the OpenAPI document ragcore-server serves at /openapi.json
                          (server/openapi.json plus the library's search options), with a
                          curl example for every operation
  the option tables between "<!-- generated: ... -->" markers in the guides, from the
                          library's option tables (core/search_options.c,
                          core/hygiene_policy.c)

usage: tools/gen_api_docs.py [--server BIN | --openapi FILE] [--check] [--run-examples]
  --server BIN      start BIN (ragcore-server) on a scratch store and read /openapi.json
                    (default: build/bin/ragcore-server)
  --openapi FILE    read a saved copy of the served document instead
  --check           write nothing; exit 1 naming each stale file (with a diff)
  --run-examples    with --server: run every curl example's request against the server, in
                    order, and fail on any answer that is not 2xx
Standard library only.
"""
import argparse
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REGEN = "python3 tools/gen_api_docs.py"

# ---- markdown helpers ------------------------------------------------------------------------


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def md_text(s):
    """Text from a C comment or a schema description, safe in Markdown prose."""
    s = s.replace("<", "&lt;")
    return re.sub(r"(?<![`\\])\*", r"\\*", s)


def md_cell(s):
    return md_text(s).replace("|", "\\|").replace("\n", " ")


# ---- the C header ----------------------------------------------------------------------------

PLUMBING = re.compile(r"^\s*(#\s*(ifndef|ifdef|if|else|endif|include|undef)\b|extern \"C\"|}\s*$|"
                      r"#define RAGCORE_H\b|#define RAG_API\b)")
BANNER = re.compile(r"^/\* -{20,} \*/$")


def comment_text(lines):
    """The text of a block of C comment lines, without the comment markers."""
    out = []
    for ln in lines:
        t = ln.strip()
        t = re.sub(r"^/\*+ ?", "", t)
        t = re.sub(r" ?\*+/$", "", t)
        t = re.sub(r"^\* ?", "", t)
        out.append(t.rstrip())
    # one-line-per-comment banners ("/* text */" on each line) read as one paragraph
    while out and not out[-1]:
        out.pop()
    while out and not out[0]:
        out.pop(0)
    return out


def render_doc(lines):
    """Comment lines as Markdown: paragraphs, lines indented 4+ spaces as code blocks."""
    out, code = [], False
    for ln in lines:
        indented = ln.startswith("    ") and ln.strip()
        if indented and not code:
            out.append("")
            code = True
        elif not indented and code and ln.strip():
            out.append("")
            code = False
        out.append(ln if code else md_text(ln))
    return "\n".join(out).strip("\n")


def decl_names(decl):
    """The names a declaration introduces, for its heading."""
    flat = re.sub(r"/\*.*?\*/", " ", decl, flags=re.S)
    flat = re.sub(r"\s+", " ", flat).strip()
    m = re.match(r"#define (\w+)", flat)
    if m:
        return [m.group(1)]
    if "{" in flat:  # a struct or enum definition: the name after '}' or after the keyword
        m = (re.search(r"}\s*(\w+)\s*;$", flat) or
             re.match(r"(?:typedef )?(?:enum|struct) (\w+)", flat) or
             re.match(r"enum \{ (\w+)", flat))  # an anonymous enum: its first constant
        return [m.group(1)]
    names = []
    for stmt in [x for x in flat.split(";") if x.strip()]:
        stmt = stmt.strip()
        if stmt.startswith("typedef"):
            m = re.search(r"\(\s*\*\s*(\w+)\s*\)\s*\(", stmt)  # function pointer type
            if m:
                names.append(m.group(1))
                continue
            m = re.search(r"(\w+)\s*$", stmt)
            if m:
                names.append(m.group(1))
            continue
        if stmt.startswith("enum"):
            m = re.match(r"enum (\w+)", stmt)
            names.append(m.group(1) if m else "enum")
            continue
        m = re.search(r"(\w+)\s*\(", stmt)
        if m:
            names.append(m.group(1))
    return names


def read_decl(lines, i):
    """The declaration starting at lines[i]: (text, next index)."""
    ln = lines[i]
    if ln.startswith("#define"):
        j = i
        while lines[j].rstrip().endswith("\\"):
            j += 1
        return "\n".join(lines[i:j + 1]), j + 1
    depth, j = 0, i
    while True:
        code = re.sub(r"/\*.*?\*/", "", lines[j])
        depth += code.count("{") - code.count("}")
        if depth <= 0 and code.rstrip().endswith(";"):
            return "\n".join(lines[i:j + 1]), j + 1
        j += 1


def parse_header(path):
    """Splits the header into its opening comment and sections of entries."""
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    # opening comment: the manual's conventions
    assert lines[0].startswith("/*")
    while not lines[i].rstrip().endswith("*/"):
        i += 1
    intro = comment_text(lines[1:i])
    i += 1
    sections = [{"title": "Version", "intro": [], "entries": []}]
    pending = []  # comment lines not yet attached
    while i < len(lines):
        ln = lines[i]
        s = ln.strip()
        if BANNER.match(s):
            # the section title: the comment lines right after the banner
            i += 1
            block = []
            while i < len(lines) and lines[i].strip().startswith(("/*", "*")) and lines[i].strip():
                block.append(lines[i])
                end = lines[i].rstrip().endswith("*/")
                i += 1
                if end and not lines[i].strip().startswith("/*"):
                    break
            text = comment_text(block)
            joined = " ".join(t for t in text if t)
            title = re.split(r"(?<=[.:])\s", joined, maxsplit=1)
            head = title[0].rstrip(".:")
            rest = title[1] if len(title) > 1 else ""
            rest = rest[:1].upper() + rest[1:]
            sections.append({"title": head, "intro": [rest] if rest else [], "entries": []})
            pending = []
            continue
        if s.startswith("/*"):
            block = [ln]
            while not lines[i].rstrip().endswith("*/"):
                i += 1
                block.append(lines[i])
            i += 1
            pending = pending + comment_text(block) if pending else comment_text(block)
            if i < len(lines) and not lines[i].strip():
                # a free-standing comment: prose of the section
                sections[-1]["entries"].append({"names": [], "decl": "", "doc": pending})
                pending = []
            continue
        if not s or PLUMBING.match(ln):
            pending = [] if not s else pending
            i += 1
            continue
        # one or more declarations in a row share the comment above them
        decls = []
        while i < len(lines) and lines[i].strip() and not lines[i].strip().startswith("/*") \
                and not PLUMBING.match(lines[i]):
            d, i = read_decl(lines, i)
            decls.append(d)
        names = [n for d in decls for n in decl_names(d)]
        sections[-1]["entries"].append({"names": names, "decl": "\n".join(decls), "doc": pending})
        pending = []
    return intro, [s for s in sections if s["entries"]]


def gen_reference_c(header):
    intro, sections = parse_header(header)
    out = ["# C API reference", "",
           "Generated by `tools/gen_api_docs.py` from the documented declarations of "
           "`include/ragcore.h`, in the header's order; do not edit it by hand (run `%s`). "
           "The header itself is the authoritative text; [getting-started-c.md]"
           "(getting-started-c.md) shows how to build against it." % REGEN, "",
           "```text", *intro, "```", "", "## Contents", ""]
    for sec in sections:
        out.append("- [%s](#%s)" % (sec["title"], slug(sec["title"])))
    for sec in sections:
        out += ["", "## " + sec["title"], ""]
        if sec["intro"]:
            out += [md_text(" ".join(sec["intro"])), ""]
        for e in sec["entries"]:
            if not e["names"]:
                out += [render_doc(e["doc"]), ""]
                continue
            out += ["### " + ", ".join(e["names"]), "", "```c", e["decl"], "```", ""]
            if e["doc"]:
                out += [render_doc(e["doc"]), ""]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip("\n") + "\n"


# ---- the OpenAPI document --------------------------------------------------------------------

SERVER_ENV = "RAGCORE_URL=http://127.0.0.1:8080"

# One example per operation, in an order that runs as a session against a fresh server:
# operationId -> (path parameters, query string, body). KEY_ID is the id createKey returned.
EXAMPLES = [
    ("healthz", {}, "", None),
    ("readyz", {}, "", None),
    ("openapi", {}, "", None),
    ("createCollection", {}, "", {"name": "support"}),
    ("upsertDocuments", {"collection": "support"}, "", {"documents": [
        {"id": "faq-12", "text": "Refunds are processed within 5 business days.",
         "title": "Refunds", "source": "https://example.org/faq",
         "metadata": {"lang": "en", "team": "billing"}}]}),
    ("listCollections", {}, "", None),
    ("getCollection", {"collection": "support"}, "", None),
    ("getDocument", {"collection": "support", "id": "faq-12"}, "", None),
    ("search", {"collection": "support"}, "", {
        "query": "how long do refunds take?", "k": 5, "filter": "lang = \"en\""}),
    ("context", {"collection": "support"}, "", {
        "query": "how long do refunds take?", "budget_tokens": 300}),
    ("createEmbeddings", {}, "", {"input": ["how long do refunds take?"],
                                  "input_type": "query"}),
    ("metrics", {}, "", None),
    ("queryLog", {}, "?collection=support&limit=10", None),
    ("createKey", {}, "", {"name": "support-reader", "scopes": ["read"],
                           "collections": ["support"]}),
    ("listKeys", {}, "", None),
    ("revokeKey", {"id": "KEY_ID"}, "", None),
    ("deleteDocument", {"collection": "support", "id": "faq-12"}, "", None),
    ("deleteCollection", {"collection": "support"}, "", None),
    ("dashboard", {}, "", None),
]
PARAM_FALLBACK = {"collection": "support", "id": "faq-12"}


def operations(doc):
    """(method, path, path-level parameters, operation) in document order."""
    for path, item in doc["paths"].items():
        common = item.get("parameters", [])
        for method, op in item.items():
            if method != "parameters":
                yield method.upper(), path, common, op


def resolve(doc, ref):
    node = doc
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


def schema_type(s):
    if "$ref" in s:
        name = s["$ref"].rsplit("/", 1)[1]
        return "[%s](#%s)" % (name, slug("schema " + name))
    if "oneOf" in s or "anyOf" in s:
        return " or ".join(schema_type(x) for x in s.get("oneOf", s.get("anyOf")))
    t = s.get("type", "any")
    if t == "array":
        return "array of " + schema_type(s.get("items", {}))
    if s.get("format") == "byte":
        return "string (base64)"
    return t


def constraints(s):
    parts = []
    if "enum" in s:
        parts.append("one of " + ", ".join("`%s`" % json.dumps(v) for v in s["enum"]
                                          if v is not None))
    for key, word in (("minimum", "≥"), ("maximum", "≤"), ("minLength", "length ≥"),
                      ("maxLength", "length ≤"), ("minItems", "items ≥"),
                      ("maxItems", "items ≤")):
        if key in s:
            v = s[key]
            parts.append("%s %s" % (word, int(v) if float(v).is_integer() else v))
    if "pattern" in s:
        parts.append("pattern `%s`" % s["pattern"])
    if "default" in s:
        parts.append("default `%s`" % json.dumps(s["default"]))
    for alt in s.get("oneOf", s.get("anyOf", [])):
        if "description" in alt:
            parts.append(alt["description"])
    return "; ".join(parts)


def fields_table(s, required=()):
    rows = ["| field | type | required | constraints | description |", "|---|---|---|---|---|"]
    for name, p in s.get("properties", {}).items():
        desc = p.get("description", "")
        rows.append("| `%s` | %s | %s | %s | %s |" % (
            name, schema_type(p), "yes" if name in required else "",
            md_cell(constraints(p)), md_cell(desc)))
    return rows


def curl_example(method, path, common, op, ex):
    params, query, body = ex if ex else (PARAM_FALLBACK, "", None)
    url = path
    for name, val in params.items():
        url = url.replace("{%s}" % name, val)
    for p in common + op.get("parameters", []):
        if p.get("in") == "path":
            url = url.replace("{%s}" % p["name"], PARAM_FALLBACK.get(p["name"], "x"))
    auth = bool(op.get("security", [1]))
    line = ["curl -s"]
    if method not in ("GET", "POST") or (method == "POST" and body is None):
        line.append("-X " + method)
    if auth and path not in ("/", "/healthz", "/readyz", "/openapi.json"):
        line.append('-H "Authorization: Bearer $RAGCORE_API_KEY"')
    cmd = " ".join(line)
    if body is not None:
        cmd += " \\\n    -H 'Content-Type: application/json' -d '%s'" % json.dumps(body)
    cmd += ' \\\n    "$RAGCORE_URL%s%s"' % (url, query) if body is not None else \
        ' "$RAGCORE_URL%s%s"' % (url, query)
    return cmd


def gen_reference_http(doc):
    examples = {e[0]: e[1:] for e in EXAMPLES}
    info = doc["info"]
    out = ["# HTTP API reference", "",
           "Generated by `tools/gen_api_docs.py` from the OpenAPI document that "
           "`ragcore-server` serves at `GET /openapi.json` (`server/openapi.json` plus the "
           "search options of the library's option table); do not edit it by hand (run "
           "`%s`). [getting-started-http.md](getting-started-http.md) walks through a first "
           "session; [server.md](server.md) covers configuration, keys, limits and "
           "observability." % REGEN, "",
           "%s %s (OpenAPI %s). %s" % (info["title"], info["version"], doc["openapi"],
                                         md_text(info.get("description", ""))), "",
           "The examples run as one session, top to bottom, against a server started with an "
           "admin key:", "",
           "```sh",
           "export RAGCORE_API_KEY=$(openssl rand -hex 24)",
           "RAGCORE_ADMIN_KEY=$RAGCORE_API_KEY ragcore-server --db ./store --embedder hash &",
           "export " + SERVER_ENV,
           "```", "", "## Operations", "",
           "| method | path | summary |", "|---|---|---|"]
    ops = list(operations(doc))
    for method, path, _, op in ops:
        title = "%s %s" % (method, path)
        out.append("| %s | [`%s`](#%s) | %s |" % (method, path, slug(title),
                                                  md_cell(op.get("summary", ""))))
    for method, path, common, op in ops:
        out += ["", "## %s %s" % (method, path), "", md_text(op.get("summary", "").rstrip(".")) + "."]
        if op.get("description"):
            out += ["", md_text(op["description"])]
        params = common + op.get("parameters", [])
        if params:
            out += ["", "| parameter | in | type | constraints | description |",
                    "|---|---|---|---|---|"]
            for p in params:
                out.append("| `%s` | %s | %s | %s | %s |" % (
                    p["name"], p["in"], schema_type(p.get("schema", {})),
                    md_cell(constraints(p.get("schema", {}))),
                    md_cell(p.get("description", ""))))
        rb = op.get("requestBody")
        if rb:
            s = rb["content"]["application/json"]["schema"]
            out += ["", "Request body: %s." % schema_type(s)]
        out += ["", "| status | meaning |", "|---|---|"]
        for code, r in op.get("responses", {}).items():
            if "$ref" in r:
                r = resolve(doc, r["$ref"])
            desc = r.get("description", "")
            content = r.get("content", {})
            for media, c in content.items():
                if "schema" in c:
                    desc += " (%s%s)" % (schema_type(c["schema"]),
                                         "" if media == "application/json" else ", " + media)
                else:
                    desc += " (%s)" % media
            out.append("| %s | %s |" % (code, md_cell(desc).replace("\\[", "[")))
        out += ["", "```sh", curl_example(method, path, common, op,
                                          examples.get(op.get("operationId"))), "```"]
    out += ["", "## Schemas", "", "Request bodies are checked field by field: an unknown field, a "
            "wrong type or a value out of range is a 400 naming the field, and `null` for an "
            "optional field means the field is absent."]
    for name, s in doc["components"]["schemas"].items():
        out += ["", "### Schema %s" % name, ""]
        if s.get("description"):
            out += [md_text(s["description"]), ""]
        if "properties" in s:
            out += fields_table(s, s.get("required", []))
        else:
            out.append("Type: %s." % schema_type(s))
        if "anyOf" in s:
            alts = [", ".join(a.get("required", [])) for a in s["anyOf"]]
            out += ["", "Requires one of: " + "; ".join("`%s`" % a for a in alts if a) + "."]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip("\n") + "\n"


# ---- option tables in the guides -------------------------------------------------------------

OPTION_RE = re.compile(r'\{\{"(\w+)", (NULL|"\w+"), RAG_OPTION_(\w+), ([^,]+), ([^,]+), '
                       r'(NULL|"[^"]*"), ("(?:[^"\\]|\\.)*"),\s*((?:"(?:[^"\\]|\\.)*"\s*)+)\}')


def c_string(lit):
    return "".join(json.loads(x) for x in re.findall(r'"(?:[^"\\]|\\.)*"', lit))


def option_table(path, flag_note):
    src = open(path, encoding="utf-8").read()
    rows = ["| name | %s | accepts | default | meaning |" % flag_note[0], "|---|---|---|---|---|"]
    for m in OPTION_RE.finditer(src):
        name, alias, typ, lo, hi, choices, default, help_ = m.groups()
        if typ == "CHOICE":
            accepts = c_string(choices).replace("|", ", ")
        elif typ == "STRING":
            accepts = "text"
        else:
            lo, hi = (x.strip() for x in (lo, hi))
            rng = {"1 << 30": "2^30", "1e12": "10^12", "1e6": "10^6"}
            accepts = "%s %s..%s" % ("integer" if typ == "INT" else "number",
                                     rng.get(lo, lo), rng.get(hi, hi))
        alias = c_string(alias) if alias != "NULL" else None
        flag = flag_note[1](name) + (" (also %s)" % flag_note[1](alias) if alias else "")
        rows.append("| `%s` | %s | %s | %s | %s |" % (
            name, flag, md_cell(accepts), md_cell(c_string(default)), md_cell(c_string(help_))))
    if len(rows) < 4:
        raise SystemExit("gen_api_docs: no option table found in " + path)
    return "\n".join(rows)


# block name -> (source, (column heading, how a front door spells the option))
GENERATED_BLOCKS = {
    "search options": ("core/search_options.c",
                       ("CLI flag", lambda n: "`--%s`" % n.replace("_", "-"))),
    "collection options": ("core/hygiene_policy.c",
                           ("CLI", lambda n: "`--set %s=`" % n)),
}


def fill_blocks(text):
    def repl(m):
        key = m.group(1)
        if key not in GENERATED_BLOCKS:
            raise SystemExit("gen_api_docs: unknown generated block '%s'" % key)
        src, note = GENERATED_BLOCKS[key]
        table = option_table(os.path.join(ROOT, src), note)
        return "<!-- generated: %s (from %s by tools/gen_api_docs.py) -->\n%s\n" \
               "<!-- end generated -->" % (key, src, table)
    return re.sub(r"<!-- generated: ([\w ]+?) \(.*?\) -->\n.*?<!-- end generated -->", repl,
                  text, flags=re.S)


# ---- the server ------------------------------------------------------------------------------

class Server:
    """ragcore-server on a scratch store with a generated admin key."""

    def __init__(self, binary):
        self.tmp = tempfile.mkdtemp(prefix="gen_api_docs.")
        self.key = "gen-api-docs-" + os.urandom(12).hex()
        env = dict(os.environ, RAGCORE_ADMIN_KEY=self.key)
        port_file = os.path.join(self.tmp, "port")
        self.log = open(os.path.join(self.tmp, "server.log"), "wb")
        self.proc = subprocess.Popen(
            [binary, "--db", os.path.join(self.tmp, "store"), "--embedder", "hash",
             "--listen", "127.0.0.1:0", "--port-file", port_file, "--access-log", "off"],
            env=env, stdout=self.log, stderr=self.log)
        deadline = time.time() + 60
        while time.time() < deadline:
            if os.path.exists(port_file) and open(port_file).read().strip():
                break
            if self.proc.poll() is not None:
                raise SystemExit("gen_api_docs: %s exited: %s" % (binary, self.tail()))
            time.sleep(0.05)
        self.url = "http://127.0.0.1:%s" % open(port_file).read().strip()
        while time.time() < deadline:
            try:
                if self.request("GET", "/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise SystemExit("gen_api_docs: the server never became ready: " + self.tail())

    def tail(self):
        self.log.flush()
        return open(os.path.join(self.tmp, "server.log"), errors="replace").read()[-800:]

    def request(self, method, target, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + target, data=data, method=method)
        req.add_header("Authorization", "Bearer " + self.key)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def run_examples(server, doc):
    """Sends every example request in order; returns the failures."""
    ops = {op.get("operationId"): (m, p) for m, p, _, op in operations(doc)}
    failures, key_id = [], None
    missing = sorted(set(ops) - {e[0] for e in EXAMPLES})
    if missing:
        failures.append("operations without an example in EXAMPLES: " + ", ".join(missing))
    for op_id, params, query, body in EXAMPLES:
        if op_id not in ops:
            failures.append("EXAMPLES names '%s', which the document lacks" % op_id)
            continue
        method, path = ops[op_id]
        for name, val in params.items():
            path = path.replace("{%s}" % name, key_id if val == "KEY_ID" else val)
        status, reply = server.request(method, path + query, body)
        if not 200 <= status < 300:
            failures.append("%s %s%s -> %d %s" % (method, path, query, status,
                                                  reply[:200].decode(errors="replace")))
        elif op_id == "createKey":
            key_id = json.loads(reply)["id"]
    return failures


# ---- main ------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", default=os.path.join(ROOT, "build", "bin", "ragcore-server"))
    ap.add_argument("--openapi")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--run-examples", action="store_true")
    a = ap.parse_args()

    server, failures = None, []
    try:
        if a.openapi:
            doc = json.load(open(a.openapi, encoding="utf-8"))
        else:
            server = Server(a.server)
            status, body = server.request("GET", "/openapi.json")
            if status != 200:
                raise SystemExit("gen_api_docs: GET /openapi.json answered %d" % status)
            doc = json.loads(body)
        if a.run_examples:
            if not server:
                raise SystemExit("gen_api_docs: --run-examples needs --server")
            failures = run_examples(server, doc)
    finally:
        if server:
            server.close()

    outputs = {
        "docs/reference-c.md": gen_reference_c(os.path.join(ROOT, "include", "ragcore.h")),
        "docs/reference-http.md": gen_reference_http(doc),
    }
    for name in sorted(os.listdir(os.path.join(ROOT, "docs"))):
        if name.endswith(".md") and name not in ("reference-c.md", "reference-http.md"):
            old = open(os.path.join(ROOT, "docs", name), encoding="utf-8").read()
            if "<!-- generated: " in old:
                outputs["docs/" + name] = fill_blocks(old)
    stale = []
    for rel, text in outputs.items():
        path = os.path.join(ROOT, rel)
        old = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
        if old == text:
            continue
        if a.check:
            stale.append(rel)
            sys.stdout.writelines(list(difflib.unified_diff(
                old.splitlines(True), text.splitlines(True), rel, rel + " (generated)"))[:60])
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            print("wrote " + rel)
    for f in failures:
        print("example failed: " + f)
    if stale:
        print("stale: %s (regenerate with `%s`)" % (", ".join(stale), REGEN))
    return 1 if stale or failures else 0


if __name__ == "__main__":
    sys.exit(main())
