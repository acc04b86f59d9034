#!/usr/bin/env python3
"""Prints the detection figures of bench/detection.sh: recall on test spam
and the false-positive rate on test ham, each with a 95% Wilson score
interval (the normal approximation fails near 0% and 100%, where filters
live), CPU per message, as text and as a Markdown table.

Input (stdin), one system a line, tab-separated:
  name  spam_flagged  spam_n  ham_flagged  ham_n  cpu_seconds  verdict
or, for a system that could not run:
  name  n/a  reason
"""
import math
import sys

Z = 1.959964  # two-sided 95%


def wilson(k, n):
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + Z * Z / n
    centre = (p + Z * Z / (2 * n)) / d
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / d
    return (max(0.0, centre - half), min(1.0, centre + half))


def rate(k, n):
    lo, hi = wilson(k, n)
    p = k / n if n else 0.0
    return "%.2f%% [%.2f, %.2f] (%d/%d)" % (100 * p, 100 * lo, 100 * hi, k, n)


def rows(lines):
    for line in lines:
        f = line.rstrip("\n").split("\t")
        if len(f) < 3:
            continue
        if f[1] == "n/a":
            yield f[0], None, "n/a (%s)" % f[2]
            continue
        sk, sn, hk, hn = map(int, f[1:5])
        cpu = float(f[5])
        ms = 1000 * cpu / max(1, sn + hn)
        yield f[0], (rate(sk, sn), rate(hk, hn), "%.2f" % ms), f[6]


def main():
    table = list(rows(sys.stdin))
    print("\n%-34s %-34s %-34s %9s" % ("system", "spam recall [95% CI]", "ham false positives [95% CI]", "CPU ms/msg"))
    for name, r, verdict in table:
        if r is None:
            print("%-34s %s" % (name, verdict))
        else:
            print("%-34s %-34s %-34s %9s" % (name, r[0], r[1], r[2]))
    print("\nverdicts:")
    for name, r, verdict in table:
        if r is not None:
            print("  %s: %s" % (name, verdict))
    print("\n| system | spam recall [95% CI] (n) | ham false positives [95% CI] (n) | CPU ms/msg | verdict |")
    print("|---|---|---|---:|---|")
    for name, r, verdict in table:
        if r is None:
            print("| %s | %s | | | |" % (name, verdict))
        else:
            print("| %s | %s | %s | %s | %s |" % (name, r[0], r[1], r[2], verdict))


if __name__ == "__main__":
    main()
