#!/usr/bin/env bash
# Crawl benchmarks of the `trawl` binary against trawl-testsite on this machine.
#
#   scripts/bench-crawl.sh speed     # 100,000 pages, 1 host, politeness lifted, 3 runs
#   scripts/bench-crawl.sh memory    # peak RSS at 10,000 and 100,000 pages (+ 1,000,000 with MEMORY_1M=1)
#   scripts/bench-crawl.sh latency   # 50 hosts, 50 ms per response, 2 per host, concurrency 100
#   scripts/bench-crawl.sh all
#   scripts/bench-crawl.sh ab OLD NEW  # the speed run for two trawl binaries, alternating
#   scripts/bench-crawl.sh scale       # 100,000 then 1,000,000 pages: pages/s and RSS per tenth
#   scripts/bench-crawl.sh broad       # 100,000 virtual hosts of 4 pages (BROAD_HOSTS, BROAD_PAGES,
#                                      # BROAD_ARGS for extra trawl flags): pages/s, hosts, peak RSS
#   scripts/bench-crawl.sh recrawl     # a crawl of RECRAWL_PAGES (100,000) unchanged pages with
#                                      # validators and WARC output, then RUNS recrawls (all 304s):
#                                      # pages/s, bytes written per page, peak RSS
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

# scale_run N: crawls an N-page site with sitemaps, sampling records and RSS every
# second; prints pages/s and peak RSS per tenth of the crawl, the whole run, the time
# to the first 10,000 records and the stall warnings.
scale_run() {
  local n=$1 dir="$WORK/scale$1"
  rm -rf "$dir"; mkdir -p "$dir"
  start_site --pages "$n" --hosts 1
  /usr/bin/time -f "%e %U %S %M" -o "$dir/time" "$TRAWL" crawl $ROOTS --state "$dir/state" -o "$dir/out.jsonl" \
    -q --rate 0 --concurrency 64 --per-host-concurrency 64 --stats-json "$dir/stats.json" 2>"$dir/stderr" &
  local tpid=$! pid=""
  for _ in $(seq 50); do pid=$(pgrep -P "$tpid" | head -1); [ -n "$pid" ] && break; sleep 0.1; done
  local t0; t0=$(date +%s.%N)
  : >"$dir/samples"
  while kill -0 "$tpid" 2>/dev/null; do
    local rss; rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    echo "$(echo "$(date +%s.%N) - $t0" | bc -l) $(wc -l <"$dir/out.jsonl" 2>/dev/null || echo 0) ${rss:-0}" >>"$dir/samples"
    sleep 1
  done
  wait "$tpid" || true
  echo "$(echo "$(date +%s.%N) - $t0" | bc -l) $(wc -l <"$dir/out.jsonl") 0" >>"$dir/samples"
  stop_site
  python3 - "$n" "$dir" <<'PY'
import json, sys
n, d = int(sys.argv[1]), sys.argv[2]
s = [tuple(float(x) for x in l.split()) for l in open(f"{d}/samples") if len(l.split()) == 3]
wall, user, sysc, peak = open(f"{d}/time").read().split()[-4:]
total = sum(1 for _ in open(f"{d}/out.jsonl"))
print(f"scale {n}: {total} records in {float(wall):.1f} s = {total/float(wall):.0f} pages/s; "
      f"trawl CPU {1000*(float(user)+float(sysc))/total:.3f} ms/page; peak RSS {int(peak)/1024:.1f} MiB")
s = [(0.0, 0.0, 0.0)] + s
def at(k):  # when the k-th record was written, interpolated between samples
    for (t1, r1, _), (t2, r2, _) in zip(s, s[1:]):
        if r2 >= k:
            return t1 + (t2 - t1) * (k - r1) / max(r2 - r1, 1)
    return s[-1][0]
for i in range(10):
    lo, hi = total * i // 10, total * (i + 1) // 10
    t_lo, t_hi = at(lo) if lo else 0.0, at(hi)
    rss = max([m for t, r, m in s if t_lo <= t <= t_hi + 1] or [0])
    rate = (hi - lo) / max(t_hi - t_lo, 1e-9)
    print(f"  tenth {i+1:2}: records {lo:>8}-{hi:<8} {rate:8.0f} pages/s, RSS up to {rss/1024:6.1f} MiB")
rates = sorted((r2 - r1) / (t2 - t1) for (t1, r1, _), (t2, r2, _) in zip(s, s[1:]) if t2 > t1)
print(f"  median of per-second rates: {rates[len(rates)//2] if rates else 0:.0f} pages/s; "
      f"first 10,000 records after {at(10000):.1f} s")
first, last = (total // 10) / max(at(total // 10), 1e-9), (total - total * 9 // 10) / max(at(total) - at(total * 9 // 10), 1e-9)
print(f"  last tenth / first tenth: {last/first:.2f}")
stalls = sum(1 for l in open(f"{d}/stderr") if "runtime was blocked" in l)
st = json.load(open(f"{d}/stats.json"))["stats"]
print(f"  stall warnings (>= 50 ms): {stalls}; worst stall {st['max_stall_ms']:.1f} ms")
PY
}

scale() {
  for n in 100000 1000000; do scale_run "$n"; done
}

# broad: a broad crawl of BROAD_HOSTS virtual hosts (h0.localhost ...) of BROAD_PAGES
# pages each on one port, from testsite's portal with subdomains in scope, sitemaps
# on, 64 fetches at once, 2 per host, no rate limit (BROAD_ARGS to change: with a
# rate, each host's first page waits 1/rate after its robots.txt while holding a
# fetch slot, so a broad crawl takes on about concurrency x rate hosts a second).
# Samples RSS every 5 s; prints pages/s, hosts crawled and peak RSS.
broad() {
  local hosts=${BROAD_HOSTS:-100000} per=${BROAD_PAGES:-4} dir="$WORK/broad"
  rm -rf "$dir"; mkdir -p "$dir"
  start_site --vhosts "$hosts" --pages "$((hosts * per))"
  # shellcheck disable=SC2086
  /usr/bin/time -f "%e %U %S %M" -o "$dir/time" "$TRAWL" crawl $ROOTS --subdomains --allow-private-ips \
    --state "$dir/state" -o "$dir/out.jsonl" -q --concurrency 64 --stats-json "$dir/stats.json" \
    ${BROAD_ARGS:---rate 0} 2>"$dir/stderr" &
  local tpid=$! pid=""
  for _ in $(seq 50); do pid=$(pgrep -P "$tpid" | head -1); [ -n "$pid" ] && break; sleep 0.1; done
  local t=0
  while kill -0 "$tpid" 2>/dev/null; do
    sleep 5; t=$((t + 5))
    local rss; rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    echo "  ${t} s: $(wc -l <"$dir/out.jsonl" 2>/dev/null || echo 0) records, RSS $(( ${rss:-0} / 1024 )) MiB"
  done
  wait "$tpid" || true
  stop_site
  python3 - "$dir" "$hosts" "$per" <<'PY'
import json, sys
d, hosts, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
wall, user, sysc, peak = open(f"{d}/time").read().split()[-4:]
total = sum(1 for _ in open(f"{d}/out.jsonl"))
st = json.load(open(f"{d}/stats.json"))
s = st["stats"]
print(f"broad {hosts} hosts x {per} pages: {total} records ({s['ok']} ok) in {float(wall):.1f} s = "
      f"{total/float(wall):.0f} pages/s; {s['hosts']} hosts; trawl CPU {1000*(float(user)+float(sysc))/max(total,1):.3f} ms/page; "
      f"peak RSS {int(peak)/1024:.1f} MiB; outcome {st['outcome']}; worst stall {s['max_stall_ms']:.1f} ms")
PY
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

recrawl() {
  local n=${RECRAWL_PAGES:-100000}
  start_site --pages "$n" --hosts 1 --all-validators
  local dir="$WORK/recrawl" fast=(--rate 0 --concurrency 64 --per-host-concurrency 64 -q)
  rm -rf "$dir"; mkdir -p "$dir"
  /usr/bin/time -f "%e %U %S %M" -o "$dir/time0" "$TRAWL" crawl $ROOTS --state "$dir/state" \
    -o "$dir/out.jsonl" --warc "$dir/out.warc.gz" "${fast[@]}" || true
  local pages0; pages0=$(wc -l <"$dir/out.jsonl")
  local bytes0; bytes0=$(cat "$dir/out.jsonl" "$dir/out.warc.gz" "$dir/out.cdxj" "$dir/state/history.jsonl" | wc -c)
  read -r wall0 _ _ _ < <(tail -n 1 "$dir/time0")
  echo "recrawl: the crawl: $pages0 pages in $wall0 s; outputs and history $(echo "$bytes0 / $pages0" | bc) bytes/page"
  : >"$WORK/recrawl-runs"
  for i in $(seq "$RUNS"); do
    /usr/bin/time -f "%e %U %S %M" -o "$dir/time$i" "$TRAWL" recrawl "$dir/state" "${fast[@]}" || true
    local out="$dir/out-recrawl-$i"
    local pages; pages=$(wc -l <"$out.jsonl")
    local nm; nm=$(grep -c '"recrawl":"not-modified"' "$out.jsonl" || true)
    local outb; outb=$(cat "$out.jsonl" "$out.warc.gz" "$out.cdxj" "$dir/state/recrawl/$i/history.jsonl" | wc -c)
    local warcb; warcb=$(wc -c <"$out.warc.gz")
    local stateb; stateb=$(du -sb "$dir/state/recrawl/$i" | cut -f1)
    read -r wall user sys rss < <(tail -n 1 "$dir/time$i")
    echo "$pages $wall $(echo "$user + $sys" | bc -l) $rss $nm $outb $warcb $stateb" >>"$WORK/recrawl-runs"
  done
  stop_site
  awk '{printf "recrawl run %d: %d pages (%d not-modified) in %.2f s = %.0f pages/s; trawl CPU %.3f ms/page; written %.0f bytes/page (WARC %.0f), state dir %.0f bytes/page; peak RSS %.1f MiB\n",
          NR, $1, $5, $2, $1/$2, 1000*$3/$1, $6/$1, $7/$1, $8/$1, $4/1024}' "$WORK/recrawl-runs"
  echo "recrawl median: $(awk '{print $1/$2}' "$WORK/recrawl-runs" | median | xargs printf '%.0f') pages/s," \
    "$(awk '{print $6/$1}' "$WORK/recrawl-runs" | median | xargs printf '%.0f') bytes written/page (outputs and history)," \
    "$(awk '{print $8/$1}' "$WORK/recrawl-runs" | median | xargs printf '%.0f') bytes/page in the state dir," \
    "$(awk '{print $4/1024}' "$WORK/recrawl-runs" | median | xargs printf '%.1f') MiB peak RSS"
}

case "${1:-all}" in
  speed) speed ;;
  memory) memory ;;
  latency) latency ;;
  all) speed; memory; latency ;;
  ab) ab "$2" "$3" ;;
  scale) scale ;;
  scale-one) scale_run "$2" ;;
  broad) broad ;;
  recrawl) recrawl ;;
  *) echo "usage: $0 [speed|memory|latency|all|ab OLD NEW|scale|scale-one N|broad|recrawl]" >&2; exit 2 ;;
esac
