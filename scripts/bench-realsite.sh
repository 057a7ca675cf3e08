#!/usr/bin/env bash
# A real site, crawled completely? Serves DIR on 127.0.0.1 with trawl-testsite's static
# mode, crawls it with trawl (defaults, politeness lifted for speed), and compares with
# what `wget -r` finds on the same server (when wget is installed).
#
#   scripts/bench-realsite.sh ~/.rustup/toolchains/*/share/doc/rust/html
#   scripts/bench-realsite.sh /usr/share/doc/libstdc++-12-doc/html
#
# Reports: HTML pages found by each, coverage (trawl's share of wget's pages), wall
# time, pages/s, trawl's CPU per page and peak RSS. Nothing leaves 127.0.0.1.
set -euo pipefail
dir=${1:?usage: $0 DIR}
cd "$(dirname "$0")/.."
WORK=$(mktemp -d /tmp/trawl-realsite.XXXXXX)
SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
command -v /usr/bin/time >/dev/null || { echo "bench-realsite: /usr/bin/time is needed (apt-get install time)" >&2; exit 1; }
cargo build --release -q -p trawl -p trawl-testsite
target/release/trawl-testsite --dir "$dir" --port 0 >"$WORK/root" 2>/dev/null &
SERVER_PID=$!
for _ in $(seq 100); do [ -s "$WORK/root" ] && break; sleep 0.1; done
ROOT=$(cat "$WORK/root")
echo "serving $dir at $ROOT"

# HTML pages: a 2xx whose URL ends in .html, .htm or / (how both crawlers' lists are cut).
html_urls() { grep -E '\.html?$|/$' | sort -u; }

/usr/bin/time -f "%e %U %S %M" -o "$WORK/time" target/release/trawl crawl "$ROOT" --state "$WORK/state" \
  -o "$WORK/out.jsonl" -q --rate 0 --concurrency 64 --per-host-concurrency 64 --stats-json "$WORK/stats.json" || true
read -r wall user sys rss < <(tail -n 1 "$WORK/time")
python3 -c '
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r.get("status") and 200 <= r["status"] < 300 and "html" in (r.get("content_type") or ""):
        print(r["url"])' "$WORK/out.jsonl" | html_urls >"$WORK/trawl.urls"
pages=$(wc -l <"$WORK/out.jsonl")
found=$(wc -l <"$WORK/trawl.urls")
echo "trawl: $found HTML pages ($pages records) in ${wall} s = $(echo "$pages / $wall" | bc) records/s;" \
  "CPU $(echo "scale=3; 1000 * ($user + $sys) / $pages" | bc) ms/record; peak RSS $(echo "$rss / 1024" | bc) MiB"

if command -v wget >/dev/null; then
  start=$(date +%s.%N)
  (cd "$WORK" && wget -r -l inf -nv --delete-after -e robots=on "$ROOT" 2>"$WORK/wget.log" || true)
  wwall=$(echo "$(date +%s.%N) - $start" | bc -l)
  grep -o 'URL:[^ ]*' "$WORK/wget.log" | sed 's/^URL://' | html_urls >"$WORK/wget.urls"
  wfound=$(wc -l <"$WORK/wget.urls")
  both=$(comm -12 "$WORK/trawl.urls" "$WORK/wget.urls" | wc -l)
  echo "wget -r: $wfound HTML pages in $(printf %.1f "$wwall") s"
  echo "coverage: trawl found $both of wget's $wfound ($(echo "scale=2; 100 * $both / $wfound" | bc)%)"
  echo "missed by trawl (first 10):"; comm -13 "$WORK/trawl.urls" "$WORK/wget.urls" | head -10 | sed 's/^/  /'
else
  echo "wget is not installed: no reference count (apt-get install wget)"
fi
