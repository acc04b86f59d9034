#!/usr/bin/env python3
"""Prints the detection figures of bench/detection.sh: recall on test spam
and the false-positive rate on test ham, each with a 95% Wilson score
interval (the normal approximation fails near 0% and 100%, where filters
live), CPU per message, as text and as a Markdown table, each system at its
own default threshold. Then, for the systems with per-message scores, the
same at equal false positives (bench/detection/equal_fp.py): the threshold
that keeps each one at <= 0.5% of test ham, read off the test set.

Input (stdin), one system a line, tab-separated:
  name  spam_flagged  spam_n  ham_flagged  ham_n  cpu_seconds  verdict  [scores_file]
or, for a system that could not run:
  name  n/a  reason
"""
import math
import os
import sys

import equal_fp

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
    """(name, (recall, false positives, CPU) or None, verdict, scores file)."""
    for line in lines:
        f = line.rstrip("\n").split("\t")
        if len(f) < 3:
            continue
        if f[1] == "n/a":
            yield f[0], None, "n/a (%s)" % f[2], ""
            continue
        sk, sn, hk, hn = map(int, f[1:5])
        cpu = float(f[5])
        ms = 1000 * cpu / max(1, sn + hn)
        scores = f[7] if len(f) > 7 else ""
        yield f[0], (rate(sk, sn), rate(hk, hn), "%.2f" % ms), f[6], scores


def print_default(table):
    print("\n%-34s %-34s %-34s %9s" % ("system", "spam recall [95% CI]", "ham false positives [95% CI]", "CPU ms/msg"))
    for name, r, verdict, _ in table:
        if r is None:
            print("%-34s %s" % (name, verdict))
        else:
            print("%-34s %-34s %-34s %9s" % (name, r[0], r[1], r[2]))
    print("\nverdicts:")
    for name, r, verdict, _ in table:
        if r is not None:
            print("  %s: %s" % (name, verdict))
    print("\n| system | spam recall [95% CI] (n) | ham false positives [95% CI] (n) | CPU ms/msg | verdict |")
    print("|---|---|---|---:|---|")
    for name, r, verdict, _ in table:
        if r is None:
            print("| %s | %s | | | |" % (name, verdict))
        else:
            print("| %s | %s | %s | %s | %s |" % (name, r[0], r[1], r[2], verdict))


EQUAL_FP = ("At equal false positives (<= 0.5% of test ham; threshold read off the test set, "
            "same for every system)")


def equal_fp_rows(table):
    """(name, (recall, false positives, threshold, AUC) or None, why) for
    each system that ran with a scores file."""
    for name, r, _, scores in table:
        if r is None or not scores:
            continue
        if not os.path.exists(scores):
            yield name, None, "n/a (no per-message scores: %s)" % scores
            continue
        scored = equal_fp.load(scores)
        point = equal_fp.operating_point(scored)
        area = equal_fp.auc(scored)
        area = "-" if area is None else "%.4f" % area
        if point is None:
            yield name, None, "n/a (more ham refused outright than the limit)"
            continue
        yield name, (rate(point.spam_k, point.spam_n), rate(point.ham_k, point.ham_n),
                     equal_fp.threshold(point), area), "at most %d ham" % point.limit


def print_equal_fp(table):
    points = list(equal_fp_rows(table))
    if not points:
        return
    limits = sorted({why for _, p, why in points if p is not None})
    print("\n" + EQUAL_FP)
    print("(a point on each system's ROC curve, for comparison only, not a configuration anyone")
    print(" ships; flagged = score above the threshold, refused by spamgate = +inf; %s)"
          % ", ".join(limits))
    print("%-34s %-34s %-34s %-10s %7s" % ("system", "spam recall [95% CI]", "ham false positives [95% CI]",
                                          "threshold", "ROC AUC"))
    for name, p, why in points:
        if p is None:
            print("%-34s %s" % (name, why))
        else:
            print("%-34s %-34s %-34s %-10s %7s" % (name, p[0], p[1], p[2], p[3]))
    print("\n**%s**\n" % EQUAL_FP)
    print("| system | spam recall [95% CI] (n) | ham false positives [95% CI] (n) | threshold | ROC AUC |")
    print("|---|---|---|---|---:|")
    for name, p, why in points:
        if p is None:
            print("| %s | %s | | | |" % (name, why))
        else:
            print("| %s | %s | %s | %s | %s |" % (name, p[0], p[1], p[2], p[3]))


def main():
    table = list(rows(sys.stdin))
    print_default(table)
    print_equal_fp(table)


if __name__ == "__main__":
    main()
