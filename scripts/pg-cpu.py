#!/usr/bin/env python3
"""Runs a command and prints the CPU seconds PostgreSQL's processes used meanwhile.

Usage: scripts/pg-cpu.py COMMAND [ARGS...]   (e.g. scripts/pg-cpu.py ./target/release/herald
bench saturation --events 20000 --postgres postgres://postgres@127.0.0.1:5432 --json)

`herald bench` reports the server's own CPU; on PostgreSQL most of the work is the database's.
This adds up user and system time of every process named `postgres`, and the time of the
postmaster's children that exited (a run's backends exit when its database is dropped), before
and after the command, and prints the difference to stderr. The command's output is untouched.
"""
import os
import subprocess
import sys

TICKS = os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        if name != "postgres":
            continue
        fields = text[text.rindex(")") + 2 :].split()
        # fields[0] is the state (field 3 of proc(5)); utime, stime, cutime, cstime are 14-17.
        ppid, utime, stime, cutime, cstime = (int(fields[i]) for i in (1, 11, 12, 13, 14))
        total += utime + stime
        if not _is_postgres(ppid):  # the postmaster: its exited children's time is its own
            total += cutime + cstime
    return total / TICKS


def _is_postgres(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/comm") as comm:
            return comm.read().strip() == "postgres"
    except OSError:
        return False


def main() -> None:
    before = postgres_cpu_seconds()
    code = subprocess.call(sys.argv[1:])
    after = postgres_cpu_seconds()
    print(f"postgres_cpu_seconds {after - before:.2f}", file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    main()
