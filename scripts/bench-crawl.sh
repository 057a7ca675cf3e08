#!/usr/bin/env bash
# Crawl benchmarks of the `trawl` binary against trawl-testsite on this machine.
#
#   scripts/bench-crawl.sh speed     # 100,000 pages, 1 host, politeness lifted, 3 runs
#   scripts/bench-crawl.sh memory    # peak RSS at 10,000 and 100,000 pages (+ 1,000,000 with MEMORY_1M=1)
#   scripts/bench-crawl.sh latency   # 50 hosts, 50 ms per response, 2 per host, concurrency 100
#   scripts/bench-crawl.sh all
#   scripts/bench-crawl.sh ab OLD NEW  # the speed run for two trawl binaries, alternating
#
# Figures: wall time, pages/s, trawl's CPU (user+sys) per page, the test server's CPU,
# peak RSS (from /usr/bin/time). Medians of RUNS runs (default 3). Nothing leaves
# 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
WORK=$(mktemp -d /tmp/trawl-bench.XXXXXX)
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

if ! [ -x /usr/bin/time ]; then
  echo "bench-crawl: /usr/bin/time is needed (apt-get install time)" >&2
  exit 1
fi
cargo build --release -q -p trawl -p trawl-testsite
TRAWL=${TRAWL:-target/release/trawl}
SITE=target/release/trawl-testsite

start_site() { # args for trawl-testsite; sets SERVER_PID and ROOTS
  "$SITE" --port 0 --all-roots "$@" >"$WORK/roots" 2>/dev/null &
  SERVER_PID=$!
  for _ in $(seq 100); do [ -s "$WORK/roots" ] && break; sleep 0.1; done
  ROOTS=$(cat "$WORK/roots")
}
stop_site() { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; }
server_cpu() { awk '{print ($14+$15)/100}' "/proc/$SERVER_PID/stat"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# one_run NAME TRAWL-ARGS...: prints "pages wall cpu rss server_cpu"
one_run() {
  local name=$1; shift
  local dir="$WORK/$name"
  rm -rf "$dir"; mkdir -p "$dir"
  local s0; s0=$(server_cpu)
  /usr/bin/time -f "%e %U %S %M" -o "$dir/time" "$TRAWL" crawl $ROOTS --state "$dir/state" -o "$dir/out.jsonl" -q "$@" || true
  local s1; s1=$(server_cpu)
  local pages; pages=$(wc -l <"$dir/out.jsonl")
  read -r wall user sys rss < <(tail -n 1 "$dir/time")
  echo "$pages $wall $(echo "$user + $sys" | bc -l) $rss $(echo "$s1 - $s0" | bc -l)"
}

report() { # NAME < lines of one_run
  awk -v name="$1" '{p[NR]=$1; w[NR]=$2; c[NR]=$3; r[NR]=$4; s[NR]=$5;
      printf "%s run %d: %d pages in %.2f s = %.0f pages/s; trawl CPU %.3f ms/page; server CPU %.3f ms/page; peak RSS %.1f MiB\n",
        name, NR, $1, $2, $1/$2, 1000*$3/$1, 1000*$5/$1, $4/1024 }'
}

speed() {
  start_site --pages 100000 --hosts 1
  for variant in default no-sitemaps; do
    local extra=()
    [ "$variant" = no-sitemaps ] && extra=(--no-sitemaps)
    : >"$WORK/speed-$variant"
    for i in $(seq "$RUNS"); do
      one_run "speed-$variant-$i" --rate 0 --concurrency 64 --per-host-concurrency 64 "${extra[@]}" >>"$WORK/speed-$variant"
    done
    report "speed ($variant)" <"$WORK/speed-$variant"
    echo "speed ($variant) median: $(awk '{print $1/$2}' "$WORK/speed-$variant" | median | xargs printf '%.0f') pages/s," \
      "$(awk '{print 1000*$3/$1}' "$WORK/speed-$variant" | median | xargs printf '%.3f') ms trawl CPU/page," \
      "$(awk '{print 1000*$5/$1}' "$WORK/speed-$variant" | median | xargs printf '%.3f') ms server CPU/page," \
      "$(awk '{print $4/1024}' "$WORK/speed-$variant" | median | xargs printf '%.1f') MiB peak RSS"
  done
  stop_site
}

memory() {
  local sizes="10000 100000"
  [ "${MEMORY_1M:-0}" = 1 ] && sizes="$sizes 1000000"
  for n in $sizes; do
    start_site --pages "$n" --hosts 1
    one_run "mem$n" --rate 0 --concurrency 64 --per-host-concurrency 64 | report "memory $n"
    stop_site
  done
}

latency() {
  start_site --pages 30000 --hosts 50 --latency-ms 50
  : >"$WORK/latency"
  for i in $(seq "$RUNS"); do
    one_run "lat$i" --rate 0 --concurrency 100 --per-host-concurrency 2 --no-sitemaps --max-pages 20000 >>"$WORK/latency"
  done
  stop_site
  report latency <"$WORK/latency"
  echo "latency median: $(awk '{print $1/$2}' "$WORK/latency" | median | xargs printf '%.0f') pages/s" \
    "(ideal: 100 in flight / 0.05 s = 2000 pages/s)"
}

# ab OLD NEW: the speed benchmark (100,000 pages, sitemaps on) for two builds, runs
# alternating so that drift of a shared machine hits both alike.
ab() {
  local old=$1 new=$2
  start_site --pages 100000 --hosts 1
  : >"$WORK/ab-old"; : >"$WORK/ab-new"
  for i in $(seq "$RUNS"); do
    for which in old new; do
      local bin=$old; [ "$which" = new ] && bin=$new
      TRAWL=$bin one_run "ab-$which-$i" --rate 0 --concurrency 64 --per-host-concurrency 64 >>"$WORK/ab-$which"
    done
  done
  stop_site
  for which in old new; do
    report "ab ($which)" <"$WORK/ab-$which"
    echo "ab ($which) median: $(awk '{print $1/$2}' "$WORK/ab-$which" | median | xargs printf '%.0f') pages/s," \
      "$(awk '{print 1000*$3/$1}' "$WORK/ab-$which" | median | xargs printf '%.3f') ms trawl CPU/page," \
      "$(awk '{print $4/1024}' "$WORK/ab-$which" | median | xargs printf '%.1f') MiB peak RSS"
  done
}

case "${1:-all}" in
  speed) speed ;;
  memory) memory ;;
  latency) latency ;;
  all) speed; memory; latency ;;
  ab) ab "$2" "$3" ;;
  *) echo "usage: $0 [speed|memory|latency|all|ab OLD NEW]" >&2; exit 2 ;;
esac
