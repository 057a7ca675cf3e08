#!/usr/bin/env bash
# A crawl shared through one Redis (issue 15): 1, 2 and 4 `trawl crawl --frontier
# redis+unix://… --worker wN` processes, started together on this machine, crawl one
# multi-host trawl-testsite; the crawl ends when every worker has exited.
#
#   scripts/bench-distributed.sh
#
# Settings (environment):
#   RUNS=3            runs of each worker count; medians are reported
#   WORKERS="0 1 2 4" the worker counts; 0 = one trawl with its own embedded (sled)
#                     frontier and no Redis, for reference
#   PAGES=50000       pages of the synthetic site
#   HOSTS=64          its hosts (one port each), so that 4 workers all get hosts
#   ARGS="…"          extra trawl flags for every worker
#   TRAWL=path        the trawl binary (default: the release build of this repository)
#   QUEUED=1          also measure Redis bytes per queued URL (one short crawl, untimed)
#   PROFILE=1         log the Redis calls over 20 us in the slowlog and print the time
#                     per script, with how many of the EVALSHA calls were logged; it
#                     costs Redis CPU and memory (the peak memory figure is then
#                     meaningless): for diagnosis, not for the figures
#   KEEP=1            keep the work directory (outputs, logs, INFO of each Redis)
#   WAIT_IDLE=600     before each run, wait up to this many seconds for other cargo/rustc
#                     processes to end (0: do not wait)
#
# Each run gets a fresh redis-server of its own (`--port 0`, a Unix socket, AOF on
# with the default `appendfsync everysec`, no RDB), as the tests start it. Politeness
# is lifted as in bench-crawl.sh (`--rate 0 --concurrency 64 --per-host-concurrency 64`,
# per worker). Runs alternate between the worker counts so that drift of a shared
# machine hits all alike.
#
# Figures per run: records written by all workers together / wall time (start of the
# first worker to the exit of the last), the workers' CPU (user+sys from /usr/bin/time,
# summed) per record, Redis's CPU per record (INFO cpu used_cpu_user+used_cpu_sys, and
# its main thread alone, before and after), the test server's CPU per record, the CPU
# the rest of the machine used meanwhile (from /proc/stat, in cores), Redis's memory
# per known URL (INFO used_memory delta after the crawl and its peak, and MEMORY USAGE
# of the seen set's hashes and of every key of the crawl; known = done + failed +
# queued + leased in the crawl's counts).
#
# Projection: one Redis, single-threaded, saturates at one core of its main thread, so
# it serves (worker CPU per page) / (Redis main-thread CPU per page) workers that each
# have a core, at 1 / (Redis main-thread CPU per page) pages/s. Two cores cannot show
# the scaling itself.
#
# Checks: every worker exits 0, the union of the workers' JSON Lines has no URL twice,
# and its 200s are the site's PAGES pages; the script exits 1 when a run fails them.
# Nothing leaves 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
WORKERS=${WORKERS:-0 1 2 4}
PAGES=${PAGES:-50000}
HOSTS=${HOSTS:-64}
QUEUED=${QUEUED:-1}
WAIT_IDLE=${WAIT_IDLE:-600}
WORK=$(mktemp -d /tmp/trawl-bench-dist.XXXXXX)
SERVER_PID=""
REDIS_PID=""
WORKER_PIDS=()
cleanup() {
  local p
  for p in "${WORKER_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "$REDIS_PID" ]; then kill "$REDIS_PID" 2>/dev/null || true; fi
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "bench-distributed: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

for tool in /usr/bin/time redis-server redis-cli python3; do
  if ! command -v "$tool" >/dev/null; then
    echo "bench-distributed: $tool is needed (apt-get install time redis-server python3)" >&2
    exit 1
  fi
done
cargo build --release -q -p trawl -p trawl-testsite
TRAWL=${TRAWL:-target/release/trawl}
SITE=target/release/trawl-testsite
# shellcheck disable=SC2206
FAST=(--rate 0 --concurrency 64 --per-host-concurrency 64 -q ${ARGS:-})

# Other builds and tests on this machine would take the cores the workers and Redis
# share ("other load" in the figures says how much they took).
busy() { pgrep -x cargo >/dev/null || pgrep -x rustc >/dev/null; }
wait_idle() { # before each run, up to WAIT_IDLE s; says so when the machine stays busy
  if [ "$WAIT_IDLE" -gt 0 ] && busy; then
    for _ in $(seq "$WAIT_IDLE"); do busy || break; sleep 1; done
  fi
  if busy; then
    echo "bench-distributed: WARNING: cargo/rustc running, this run is on a busy machine" >&2
  fi
}

start_site() { # args for trawl-testsite; sets SERVER_PID and ROOTS
  "$SITE" --port 0 --all-roots "$@" >"$WORK/roots" 2>/dev/null &
  SERVER_PID=$!
  for _ in $(seq 100); do [ "$(wc -l <"$WORK/roots")" -ge "$HOSTS" ] && break; sleep 0.1; done
  ROOTS=$(cat "$WORK/roots")
}
stop_site() { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; }
server_cpu() { awk '{print ($14+$15)/100}' "/proc/$SERVER_PID/stat"; }
# busy jiffies of the whole machine, in seconds
machine_cpu() { awk '/^cpu / {print ($2+$3+$4+$7+$8)/100}' /proc/stat; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

start_redis() { # DIR: a fresh redis-server in DIR; sets REDIS_PID and RCLI
  local dir=$1
  mkdir -p "$dir"
  redis-server --port 0 --unixsocket "$dir/redis.sock" --dir "$dir" --appendonly yes --save '' \
    --daemonize no --logfile "$dir/redis.log" >/dev/null 2>&1 &
  REDIS_PID=$!
  RCLI=(redis-cli -s "$dir/redis.sock")
  for _ in $(seq 300); do [ "$("${RCLI[@]}" ping 2>/dev/null)" = PONG ] && return; sleep 0.1; done
  echo "bench-distributed: redis-server did not start; its log:" >&2
  cat "$dir/redis.log" >&2
  exit 1
}
stop_redis() { kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; REDIS_PID=""; }
# info FIELD...: the fields' values from INFO, summed
info() {
  local fields=" $* "
  "${RCLI[@]}" info everything | tr -d '\r' |
    awk -F: -v f="$fields" 'index(f, " " $1 " ") {s += $2} END {printf "%.6f\n", s}'
}
# keys_usage PATTERN: "bytes keys members" over the keys matching PATTERN (MEMORY USAGE
# SAMPLES 0, exact; members: the sorted sets' cardinality), in one server-side script
usage_lua="local c, t, n, m = '0', 0, 0, 0
repeat
  local r = redis.call('SCAN', c, 'MATCH', ARGV[1], 'COUNT', 1000)
  c = r[1]
  for _, k in ipairs(r[2]) do
    t = t + redis.call('MEMORY', 'USAGE', k, 'SAMPLES', '0')
    n = n + 1
    if redis.call('TYPE', k).ok == 'zset' then m = m + redis.call('ZCARD', k) end
  end
until c == '0'
return {t, n, m}"
keys_usage() { "${RCLI[@]}" eval "$usage_lua" 0 "$1" | paste -sd' '; }
# the slowlog as lines "usec command sha" (sha: EVALSHA's first argument, else -); a
# script, because redis-cli's JSON output does not escape binary arguments well
slowlog_lua="local o = {}
for _, e in ipairs(redis.call('SLOWLOG', 'GET', -1)) do
  local a = e[4]
  local c = tostring(a[1])
  o[#o + 1] = e[3] .. ' ' .. c .. ' ' .. ((string.lower(c) == 'evalsha' and a[2]) or '-')
end
return o"
# crawl_prefix: the one crawl's key prefix on a fresh server
crawl_prefix() { "${RCLI[@]}" --scan --pattern 'trawl:*:counts' | head -1 | sed 's/counts$//'; }
# known_urls PREFIX: done + failed + queued + leased
known_urls() { "${RCLI[@]}" hmget "${1}counts" d f q l | awk '{s += $1} END {print s}'; }

# start_workers DIR N TRAWL-ARGS...: N workers w1..wN on DIR's Redis, each under
# /usr/bin/time; N = 0: one trawl with its own embedded frontier, as w1
start_workers() {
  local dir=$1 n=$2
  shift 2
  WORKER_PIDS=()
  local k shared
  for k in $(seq "$(( n > 0 ? n : 1 ))"); do
    shared=(--frontier "redis+unix://$dir/redis/redis.sock" --worker "w$k")
    [ "$n" = 0 ] && shared=()
    # shellcheck disable=SC2086
    /usr/bin/time -f "%e %U %S %M %x" -o "$dir/time-w$k" "$TRAWL" crawl $ROOTS "${shared[@]}" \
      -o "$dir/out-w$k.jsonl" --state "$dir/state-w$k" --stats-json "$dir/stats-w$k.json" \
      "${FAST[@]}" "$@" 2>"$dir/stderr-w$k" &
    WORKER_PIDS+=($!)
  done
}
wait_workers() {
  local p
  for p in "${WORKER_PIDS[@]}"; do wait "$p" || true; done
  WORKER_PIDS=()
}

# one_run N I: prints "n records wall worker_cpu redis_cpu redis_main_cpu site_cpu
#   other_cores mem_delta mem_peak seen_bytes all_bytes known nonzero dups ok
#   worker_max_rss_kib min_share run evalsha_calls evalsha_usec evalsha_p99_usec
#   slow_calls worst_ms worst_script"
one_run() {
  local n=$1 i=$2 dir="$WORK/w$1-$2"
  rm -rf "$dir"; mkdir -p "$dir"
  start_redis "$dir/redis"
  # the calls over 10 ms (the default threshold), all of them
  "${RCLI[@]}" config set slowlog-max-len 100000 >/dev/null
  if [ "${PROFILE:-0}" = 1 ]; then
    # not 0: the commands the scripts call are logged too (a few us each), and would
    # push the scripts' own entries out
    "${RCLI[@]}" config set slowlog-log-slower-than 20 >/dev/null
    "${RCLI[@]}" config set slowlog-max-len 1000000 >/dev/null
  fi
  local cpu=(used_cpu_user used_cpu_sys) main=(used_cpu_user_main_thread used_cpu_sys_main_thread)
  local r0 m0 mem0; r0=$(info "${cpu[@]}"); m0=$(info "${main[@]}"); mem0=$(info used_memory)
  local s0 c0 t0; s0=$(server_cpu); c0=$(machine_cpu); t0=$(date +%s.%N)
  start_workers "$dir" "$n"
  wait_workers
  local t1 c1 s1; t1=$(date +%s.%N); c1=$(machine_cpu); s1=$(server_cpu)
  local r1 m1 mem1 peak; r1=$(info "${cpu[@]}"); m1=$(info "${main[@]}")
  "${RCLI[@]}" info everything | tr -d '\r' >"$dir/redis-info"
  "${RCLI[@]}" eval "$slowlog_lua" 0 >"$dir/redis-slowlog"
  # the memory without the slowlog's entries (used_memory counts them)
  "${RCLI[@]}" slowlog reset >/dev/null
  mem1=$(info used_memory); peak=$(info used_memory_peak)
  local prefix known=0 seen=0 all=0
  if [ "$n" -gt 0 ]; then
    prefix=$(crawl_prefix)
    known=$(known_urls "$prefix")
    read -r seen _ _ < <(keys_usage "${prefix}s:*")
    read -r all _ _ < <(keys_usage "${prefix}*")
  fi
  stop_redis
  python3 - "$dir" "$n" "$PAGES" <<PY
import collections, hashlib, json, sys
d, n, pages = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
procs = max(n, 1)
urls, ok, per = {}, 0, []
for k in range(1, procs + 1):
    c = 0
    for line in open(f"{d}/out-w{k}.jsonl"):
        r = json.loads(line)
        urls[r["url"]] = urls.get(r["url"], 0) + 1
        ok += r.get("status") == 200
        c += 1
    per.append(c)
records = sum(per)
dups = sum(1 for v in urls.values() if v > 1)
times = [open(f"{d}/time-w{k}").read().split()[-5:] for k in range(1, procs + 1)]
wcpu = sum(float(t[1]) + float(t[2]) for t in times)
rss = max(int(t[3]) for t in times)
nonzero = sum(1 for t in times if t[4] != "0")
wall = $t1 - $t0
ours = wcpu + ($r1 - $r0) + ($s1 - $s0)
other = max(($c1 - $c0) - ours, 0) / wall
# The scripts by SHA-1 (each is lua/common.lua followed by its own file), for the slowlog.
lua = "crates/frontier-redis/src/lua"
common = open(f"{lua}/common.lua", "rb").read()
names = {}
for f in ("open", "enqueue", "lease", "ack", "release", "renew", "scan", "politeness", "fail_host", "ready_hosts"):
    try:
        names[hashlib.sha1(common + open(f"{lua}/{f}.lua", "rb").read()).hexdigest()] = f
    except OSError:
        pass
info = dict(l.split(":", 1) for l in open(f"{d}/redis-info").read().splitlines() if ":" in l)
ev = dict(kv.split("=") for kv in info.get("cmdstat_evalsha", "calls=0,usec=0").split(","))
lat = dict(kv.split("=") for kv in info.get("latency_percentiles_usec_evalsha", "p99=0").split(","))
log = [l.split() for l in open(f"{d}/redis-slowlog") if len(l.split()) == 3]
log = [(int(u), c.lower(), sha) for u, c, sha in log if c.lower() != "eval"]  # not this look
def script(e):
    return names.get(e[2], e[2][:8]) if e[1] == "evalsha" else e[1]
slow = [e for e in log if e[0] >= 10000]
worst = max(log, key=lambda e: e[0]) if log else None
if len(log) > len(slow):  # PROFILE=1: every call is in the log
    by = collections.defaultdict(lambda: [0, 0, 0])
    for e in log:
        if e[1] != "evalsha":  # the commands, also those the scripts call (counted in theirs)
            continue
        b = by[script(e)]
        b[0] += 1; b[1] += e[0]; b[2] = max(b[2], e[0])
    total = sum(b[1] for b in by.values()) or 1
    with open(f"{d}/profile", "w") as out:
        print(f"  logged: {sum(b[0] for b in by.values())} of {ev['calls']} EVALSHA calls, "
              f"{total / 1000:.1f} of {int(ev['usec']) / 1000:.1f} ms", file=out)
        for name, (c, u, m) in sorted(by.items(), key=lambda kv: -kv[1][1]):
            print(f"  script {name:12} {c:7} calls ({c / records:.3f}/page) {u / 1000:9.1f} ms = {100 * u / total:4.1f}% "
                  f"{u / c:8.1f} us/call, worst {m / 1000:.1f} ms", file=out)
print(n, records, f"{wall:.3f}", f"{wcpu:.3f}", f"{$r1 - $r0:.3f}", f"{$m1 - $m0:.3f}", f"{$s1 - $s0:.3f}",
      f"{other:.2f}", int($mem1 - $mem0), int($peak - $mem0), $seen, $all, $known, nonzero, dups, ok, rss,
      f"{min(per) / max(records, 1) * procs:.2f}", $i, ev["calls"], ev["usec"], lat.get("p99", 0), len(slow),
      f"{worst[0] / 1000 if worst else 0:.1f}", script(worst) if worst else "-")
PY
}

report_run() { # < lines of one_run
  awk -v pages="$PAGES" '{
    k = $13 > 0 ? $13 : 1e300
    printf "%s, run %d: %d records in %.2f s = %.0f pages/s; workers CPU %.3f ms/page; Redis CPU %.3f ms/page (main thread %.3f); server CPU %.3f ms/page; other load %.2f cores; Redis %.1f B/known URL after (peak %.1f), seen set %.1f B, all keys %.1f B, %d known; exits non-zero %d, URLs twice %d, 200s %d/%d; worker peak RSS %.1f MiB; smallest share %.2f of even; EVALSHA %.3f/page, %.0f us mean, p99 %.1f ms, %d over 10 ms, worst %.1f ms (%s)\n",
      ($1 > 0 ? $1 " worker(s)" : "embedded frontier"), $19, $2, $3, $2/$3, 1000*$4/$2, 1000*$5/$2, 1000*$6/$2, 1000*$7/$2, $8, $9/k, $10/k, $11/k, $12/k, $13, $14, $15, $16, pages, $17/1024, $18,
      $20/$2, $21/($20 > 0 ? $20 : 1), $22/1000, $23, $24, $25 }'
}

# figures N: the median line of N workers' runs, from $WORK/runs-N
figures() {
  local f="$WORK/runs-$1"
  med() { awk "{print $1}" "$f" | median; }
  # shellcheck disable=SC2016
  echo "$1 $(med '$2/$3') $(med '1000*$4/$2') $(med '1000*$5/$2') $(med '1000*$6/$2') $(med '1000*$7/$2') $(med '($13 > 0 ? $9/$13 : 0)') $(med '($13 > 0 ? $10/$13 : 0)') $(med '($13 > 0 ? $11/$13 : 0)') $(med '($13 > 0 ? $12/$13 : 0)') $(med '$8') $(med '$3') $(med '$17/1024') $(awk '$14 > 0 || $15 > 0 || $16 != '"$PAGES"' {b++} END {print b+0}' "$f")"
}

# queued: a single worker stopped by --max-pages while most of the site is queued (the
# sitemaps put every URL in the queues early); Redis bytes per queued URL, untimed.
queued() {
  local dir="$WORK/queued"
  rm -rf "$dir"; mkdir -p "$dir"
  start_redis "$dir/redis"
  local mem0; mem0=$(info used_memory)
  start_workers "$dir" 1 --max-pages 1000
  wait_workers
  "${RCLI[@]}" slowlog reset >/dev/null
  local mem1; mem1=$(info used_memory)
  local prefix; prefix=$(crawl_prefix)
  local known; known=$(known_urls "$prefix")
  local qb qk qn seen all
  read -r qb qk qn < <(keys_usage "${prefix}q:*")
  read -r seen _ _ < <(keys_usage "${prefix}s:*")
  read -r all _ _ < <(keys_usage "${prefix}*")
  stop_redis
  awk -v qb="$qb" -v qk="$qk" -v qn="$qn" -v seen="$seen" -v all="$all" -v known="$known" -v m0="$mem0" -v m1="$mem1" 'BEGIN { d = m1 - m0
    printf "queued: %d URLs queued in %d host queues, %d known: queues %.1f B per queued URL (MEMORY USAGE); everything %.1f B per known URL (used_memory delta; all keys %.1f); seen set %.1f B per known URL\n",
      qn, qk, known, qb/qn, d/known, all/known, seen/known }'
}

start_site --pages "$PAGES" --hosts "$HOSTS"
echo "bench-distributed: $PAGES pages over $HOSTS hosts; workers $WORKERS; $RUNS runs; trawl $TRAWL; redis $(redis-server --version | awk '{print $3}')"
echo "worker flags: crawl ROOTS --frontier redis+unix://DIR/redis.sock --worker wN -o DIR/out-wN.jsonl --state DIR/state-wN ${FAST[*]}"
T0=$(date +%s)
for n in $WORKERS; do : >"$WORK/runs-$n"; done
for i in $(seq "$RUNS"); do
  for n in $WORKERS; do
    wait_idle
    one_run "$n" "$i" | tee -a "$WORK/runs-$n" | report_run
    if [ -s "$WORK/w$n-$i/profile" ]; then cat "$WORK/w$n-$i/profile"; fi
  done
done
[ "$QUEUED" = 1 ] && queued
stop_site

for n in $WORKERS; do figures "$n"; done >"$WORK/medians"
echo
echo "Medians of $RUNS runs ($PAGES pages, $HOSTS hosts; records include the robots-denied /private/ links, as bench-crawl.sh counts them):"
echo
echo "| workers | pages/s | workers' CPU/page | Redis CPU/page (main thread) | server CPU/page | Redis B/known URL after (peak) | seen set B/known URL | all keys B/known URL | other load | wall | worker peak RSS | runs failing checks |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
awk '{printf "| %s | %.0f | %.3f ms | %.3f ms (%.3f) | %.3f ms | %.1f (%.1f) | %.1f | %.1f | %.2f cores | %.1f s | %.0f MiB | %d |\n", ($1 > 0 ? $1 : "1, embedded frontier (no Redis)"), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14}' "$WORK/medians"
echo
echo "Projection (one Redis main thread at one core; each worker on a core of its own):"
awk '$1 > 0 {printf "  from %d worker(s): %.1f workers per Redis (%.3f / %.3f ms), %.0f pages/s; %.0f pages/s with the whole process (%.3f ms)\n",
        $1, $3/$5, $3, $5, 1000/$5, 1000/$4, $4}' "$WORK/medians"
echo "one full run took $(( $(date +%s) - T0 )) s"
failed=$(awk '{s += $NF} END {print s + 0}' "$WORK/medians")
if [ "$failed" -gt 0 ]; then
  echo "bench-distributed: $failed run(s) failed the checks (a worker exited non-zero, a URL twice, or 200s != $PAGES)" >&2
  exit 1
fi
