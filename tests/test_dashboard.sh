#!/usr/bin/env bash
# test_dashboard.sh - renders ragcore-server's dashboard (GET /) in headless Chromium: the
# page's JavaScript must fill the collections and recent-queries tables and draw the
# latency histogram from /metrics, and the screenshot must be a real, non-blank PNG.
set -euo pipefail
BIN=${RAGCORE_BIN:?run through ctest}
TMP=$(mktemp -d "${RAGCORE_TEST_TMP:-/tmp}/dashboard.XXXXXX")
CHROME=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$CHROME" ]; then
    echo "SKIP: chromium not installed (apt-get install chromium)"
    exit 0
fi
KEY=dash-admin-key
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; [ -f "$TMP/server.log" ] && tail -5 "$TMP/server.log"; exit 1; }

RAGCORE_ADMIN_KEY=$KEY "$BIN/ragcore-server" --db "$TMP/store" --embedder hash \
    --listen 127.0.0.1:0 --port-file "$TMP/port" 2> "$TMP/server.log" &
PID=$!
for _ in $(seq 1 300); do [ -s "$TMP/port" ] && break; sleep 0.1; done
URL=http://127.0.0.1:$(cat "$TMP/port")
for _ in $(seq 1 300); do curl -sf -o /dev/null "$URL/readyz" && break; sleep 0.1; done

H="Authorization: Bearer $KEY"
curl -sf -H "$H" -d '{"name":"handbook"}' "$URL/v1/collections" >/dev/null || fail "create collection"
curl -sf -H "$H" -d '{"documents":[{"id":"a","text":"Ragcore keeps chunks in LMDB."},{"id":"b","text":"The dashboard draws a latency histogram."}]}' \
    "$URL/v1/collections/handbook/documents" >/dev/null || fail "ingest"
for q in "latency histogram" "where are chunks kept"; do
    curl -sf -H "$H" -d "{\"query\":\"$q\",\"k\":2}" "$URL/v1/collections/handbook/search" >/dev/null || fail "search"
done
sleep 0.5 # the query log is written in 200 ms batches

chrome() {
    timeout 60 "$CHROME" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
        --user-data-dir="$TMP/profile" --virtual-time-budget=4000 "$@" 2> "$TMP/chrome.log"
}
chrome --dump-dom "$URL/#key=$KEY" > "$TMP/dom.html" || fail "chromium --dump-dom failed: $(tail -3 "$TMP/chrome.log")"
grep -q '<td>handbook</td><td>2</td>' "$TMP/dom.html" || fail "collections table lacks 'handbook' with 2 documents"
grep -q '<td>latency histogram</td>' "$TMP/dom.html" || fail "recent queries lack 'latency histogram'"
grep -q 'id="status" class="ok">ready' "$TMP/dom.html" || fail "status is not 'ready'"

chrome --screenshot="$TMP/shot.png" --window-size=1200,900 "$URL/#key=$KEY" ||
    fail "chromium --screenshot failed: $(tail -3 "$TMP/chrome.log")"
python3 - "$TMP/shot.png" <<'PY' || fail "screenshot check"
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
w, h, depth, ctype = struct.unpack(">IIBB", data[16:26])
assert (w, h) == (1200, 900), f"size {w}x{h}"
# Decode the image and count pixels that are neither the page background nor white:
# the header bar, text and histogram bars must be there.
pos, idat = 8, b""
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    if kind == b"IDAT":
        idat += data[pos + 8:pos + 8 + n]
    pos += 12 + n
raw = zlib.decompress(idat)
bpp = {2: 3, 6: 4}[ctype]
stride = w * bpp
prev = bytearray(stride)
dark = blue = 0
i = 0
for y in range(h):
    f = raw[i]; line = bytearray(raw[i + 1:i + 1 + stride]); i += 1 + stride
    for x in range(stride):
        a = line[x - bpp] if x >= bpp else 0
        b = prev[x]; c = prev[x - bpp] if x >= bpp else 0
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + b) & 255
        elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    prev = line
    for x in range(0, stride, bpp):
        r, g, bl = line[x], line[x + 1], line[x + 2]
        if r < 60 and g < 60 and bl < 80: dark += 1
        if bl > 200 and r < 100 and 100 < g < 160: blue += 1
assert dark > 20000, f"only {dark} dark pixels: header or text missing"
assert blue > 200, f"only {blue} blue pixels: histogram bars missing"
print(f"screenshot ok: {w}x{h}, {dark} dark pixels, {blue} histogram pixels")
PY
echo "ok: dashboard renders collections, recent queries and the latency histogram"
