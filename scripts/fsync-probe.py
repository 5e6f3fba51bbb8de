#!/usr/bin/env python3
"""How long this machine's disk takes to make a small write durable (fdatasync), for 20 s.

Every Herald publish waits for one of these (shared by its group), so a stall here is a stall in
every latency figure of BENCHMARKS.md. Run it before benchmarking: stalls of tens or hundreds of
milliseconds mean the disk is still flushing something (a build, an earlier run), and figures
taken now would measure that instead of Herald.

Usage: scripts/fsync-probe.py [FILE]   (default: a scratch file in the current directory)
"""

import os
import sys
import time

path = sys.argv[1] if len(sys.argv) > 1 else "fsync-probe.tmp"
fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
samples = []
deadline = time.monotonic() + 20
block = b"x" * 4096
i = 0
try:
    while time.monotonic() < deadline:
        os.pwrite(fd, block, (i % 2000) * 4096)
        i += 1
        started = time.perf_counter()
        os.fdatasync(fd)
        samples.append(time.perf_counter() - started)
        time.sleep(0.002)
finally:
    os.close(fd)
    os.unlink(path)
samples_ms = sorted(s * 1000 for s in samples)
n = len(samples_ms)
stalls = [round(s * 1000) for s in samples if s > 0.010]
print(
    f"{n} syncs: p50 {samples_ms[n // 2]:.3f} ms, p99 {samples_ms[int(n * 0.99)]:.3f} ms, "
    f"max {samples_ms[-1]:.1f} ms; stalls over 10 ms: {len(stalls)} {stalls[:20]}"
)
