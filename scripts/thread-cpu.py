#!/usr/bin/env python3
"""CPU seconds each thread of a process used while this script watched it, by thread name.

Usage: scripts/thread-cpu.py PATTERN   (waits for a process whose command line contains PATTERN,
then samples /proc/PID/task/*/stat every 100 ms until it exits, and prints each thread name's
CPU seconds and its share of the wall time it was watched.)
"""
import os
import subprocess
import sys
import time

TICKS = os.sysconf("SC_CLK_TCK")


def find(pattern: str) -> int:
    while True:
        found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
        found = [int(pid) for pid in found if int(pid) != os.getpid()]
        if found:
            return min(found)
        time.sleep(0.05)


def sample(pid: int) -> dict[int, tuple[str, int]]:
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        threads[int(tid)] = (name, int(fields[11]) + int(fields[12]))
    return threads


def main() -> None:
    pid = find(sys.argv[1])
    started = time.monotonic()
    first = sample(pid)
    last = first
    while os.path.exists(f"/proc/{pid}"):
        try:
            last = {**last, **sample(pid)}
        except OSError:
            break
        time.sleep(0.1)
    wall = time.monotonic() - started
    by_name: dict[str, float] = {}
    for tid, (name, ticks) in last.items():
        before = first.get(tid, (name, 0))[1]
        by_name[name] = by_name.get(name, 0.0) + (ticks - before) / TICKS
    print(f"watched pid {pid} for {wall:.1f} s")
    for name, seconds in sorted(by_name.items(), key=lambda item: -item[1]):
        print(f"{name:24} {seconds:7.2f} s  {100 * seconds / wall:5.1f}% of one core")


if __name__ == "__main__":
    main()
