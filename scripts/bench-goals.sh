#!/usr/bin/env bash
# Runs the issue-16 goal scenarios of `herald bench`, ROUNDS times interleaved, and keeps each
# run's JSON report in OUT (one file per run). Medians are taken from those files; see
# BENCHMARKS.md. Usage: scripts/bench-goals.sh [ROUNDS] [OUT] [sqlite|postgres|all]
# HERALD picks the binary (default ./target/release/herald); BASELINE, if set, names an earlier
# build whose steady run is interleaved with the others for comparison.
set -euo pipefail
rounds=${1:-3}
out=${2:-/tmp/herald-bench}
which=${3:-all}
herald=${HERALD:-./target/release/herald}
pg=${HERALD_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}
mkdir -p "$out"
run() {
    local name=$1
    shift
    echo "== $name $(date -u +%H:%M:%S)" >&2
    "$herald" bench "$@" --json >"$out/$name.json" 2>"$out/$name.log" || echo "   failed: see $out/$name.log" >&2
}
for round in $(seq 1 "$rounds"); do
    if [[ $which != postgres ]]; then
        run "sqlite-saturation-$round" saturation --events 20000
        run "sqlite-steady-$round" steady --rate 500 --seconds 10
        run "sqlite-fanout-$round" fanout --events 5000 --endpoints 10
        run "sqlite-saturation-history-$round" saturation --events 20000 --history 1000000
        run "sqlite-saturation-idle-$round" saturation --events 20000 --idle-endpoints 10000
        run "sqlite-steady-idle-$round" steady --rate 500 --seconds 10 --idle-endpoints 10000
        if [[ -n ${BASELINE:-} ]]; then
            # The same steady run with an earlier build, interleaved, to judge a change.
            herald=$BASELINE run "baseline-sqlite-steady-$round" steady --rate 500 --seconds 10
        fi
    fi
    if [[ $which != sqlite ]]; then
        run "pg-saturation-$round" saturation --events 20000 --postgres "$pg"
        run "pg-steady-$round" steady --rate 500 --seconds 10 --postgres "$pg"
        run "pg-fanout-$round" fanout --events 2000 --endpoints 10 --postgres "$pg"
        run "pg-saturation-idle-$round" saturation --events 20000 --idle-endpoints 10000 --postgres "$pg"
        run "pg-saturation-history-$round" saturation --events 20000 --history 1000000 --postgres "$pg"
        run "pg-steady-idle-$round" steady --rate 500 --seconds 10 --idle-endpoints 10000 --postgres "$pg"
        for nodes in 1 2 3; do
            run "pg-nodes$nodes-$round" saturation --events 10000 --nodes "$nodes" --postgres "$pg"
        done
    fi
done
