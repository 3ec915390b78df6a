#!/usr/bin/env python3
"""Alternates single runs of several commands and prints their medians and paired ratios.

Usage: pairs.py N LABEL=CMD... :: LABEL=CMD... [:: ...]

Each command runs N times, without a shell, its output discarded; one round runs every command
once, in an order that rotates from round to round, so that each sees the same moments of a
noisy machine. For every command but the last the ratio to the last one (the reference) is
printed twice: of the medians, and the median of the per-round ratios, which cancels the noise
both saw in a round. Output: one tab-separated line per command, LABEL MEDIAN_MS RATIO PAIRED.
A command that fails stops the whole run with its exit status.
"""
import os
import statistics
import sys
import time


def parse(argv):
    n = int(argv[0])
    cmds, cur = [], []
    for a in argv[1:] + ["::"]:
        if a == "::":
            if cur:
                label, _, first = cur[0].partition("=")
                cmds.append((label, [first] + cur[1:]))
            cur = []
        else:
            cur.append(a)
    if n < 1 or len(cmds) < 2:
        sys.exit("usage: pairs.py N LABEL=CMD... :: LABEL=CMD...")
    return n, cmds


def once(argv, devnull):
    t = time.perf_counter_ns()
    pid = os.posix_spawnp(argv[0], argv, os.environ,
                          file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1)])
    _, status = os.waitpid(pid, 0)
    elapsed = (time.perf_counter_ns() - t) / 1e6
    if status != 0:
        sys.exit(f"{' '.join(argv)}: exit status {os.waitstatus_to_exitcode(status)}")
    return elapsed


def main():
    n, cmds = parse(sys.argv[1:])
    devnull = os.open(os.devnull, os.O_WRONLY)
    for _, argv in cmds:  # warm-up: caches, the first run's one-time work
        for _ in range(3):
            once(argv, devnull)
    times = [[] for _ in cmds]
    for r in range(n):
        for k in range(len(cmds)):
            i = (r + k) % len(cmds)
            times[i].append(once(cmds[i][1], devnull))
    ref = times[-1]
    for (label, _), t in zip(cmds, times):
        med = statistics.median(t)
        ratio = med / statistics.median(ref)
        paired = statistics.median(a / b for a, b in zip(t, ref))
        print(f"{label}\t{med:.2f}\t{ratio:.2f}\t{paired:.2f}")


main()
