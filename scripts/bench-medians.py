#!/usr/bin/env python3
"""Medians of the runs `scripts/bench-goals.sh` left in a directory, one line per scenario.

Usage: scripts/bench-medians.py DIR
"""
import json
import pathlib
import re
import statistics
import sys


def main() -> None:
    directory = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/herald-bench")
    runs: dict[str, list[dict]] = {}
    for path in sorted(directory.glob("*.json")):
        name = re.sub(r"-\d+$", "", path.stem)
        try:
            runs.setdefault(name, []).append(json.loads(path.read_text()))
        except json.JSONDecodeError:
            print(f"{path}: not a report (the run failed?)", file=sys.stderr)
    for name, reports in sorted(runs.items()):
        def values(key, sub=None):
            found = [r[key][sub] if sub else r[key] for r in reports if r.get(key) is not None]
            return [v for v in found if v is not None]

        def show(key, sub=None, digits=0):
            found = values(key, sub)
            if not found:
                return "-"
            each = " / ".join(f"{v:,.{digits}f}" for v in found)
            return f"{statistics.median(found):,.{digits}f} ({each})"

        lost = sum(r.get("deliveries_missing", 0) for r in reports)
        duplicated = sum(r.get("duplicates", 0) for r in reports)
        errors = sum(r.get("publish_errors", 0) for r in reports)
        print(
            f"{name}: deliveries/s {show('delivery_rate_per_s')}; publish/s {show('publish_rate_per_s')}; "
            f"p50 {show('latency_ms', 'p50', 2)} ms; p99 {show('latency_ms', 'p99', 2)} ms; "
            f"RSS {show('server_peak_rss_mib', None, 1)} MiB; CPU {show('server_cpu_seconds', None, 1)} s; "
            f"lost {lost}, duplicated {duplicated}, publish errors {errors}"
        )


if __name__ == "__main__":
    main()
