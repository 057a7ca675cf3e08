#!/usr/bin/env bash
# kill -9 soak test: many rounds of "start trawl, SIGKILL it at a random moment, resume"
# on a bigger test site, then every check of the CI crash test (exactly-once JSONL, one
# WARC response per page and `warcio check`, no disallowed or out-of-scope request,
# refetches within the in-flight window). It is the CI test
# `crash::kill_9_at_random_moments_loses_nothing_and_writes_nothing_twice` with larger
# numbers:
#
#   scripts/crash-soak.sh                 # 200 rounds, 20,000 pages, random seed
#   ROUNDS=500 PAGES=50000 SEED=42 scripts/crash-soak.sh
#   RELEASE=1 scripts/crash-soak.sh       # optimized build (slower to build, faster to run)
set -euo pipefail
cd "$(dirname "$0")/.."
export TRAWL_CRASH_ROUNDS=${ROUNDS:-200}
export TRAWL_CRASH_PAGES=${PAGES:-20000}
if [ -n "${SEED:-}" ]; then export TRAWL_CRASH_SEED=$SEED; fi
if [ -x .ci/venv/bin/warcio ]; then export TRAWL_WARCIO=$PWD/.ci/venv/bin/warcio; fi
profile=()
if [ "${RELEASE:-0}" = 1 ]; then profile=(--release); fi
start=$(date +%s)
log=$(mktemp)
status=0
cargo test "${profile[@]}" -p trawl-e2e --test e2e -- --exact \
  crash::kill_9_at_random_moments_loses_nothing_and_writes_nothing_twice --nocapture 2>&1 | tee "$log" || status=$?
echo "---- crash soak summary ----"
grep -E "kill -9 test:|warcio|test result" "$log" || true
echo "rounds asked: $TRAWL_CRASH_ROUNDS, pages: $TRAWL_CRASH_PAGES, time: $(( $(date +%s) - start )) s, result: $([ $status = 0 ] && echo PASS || echo FAIL)"
rm -f "$log"
exit $status
