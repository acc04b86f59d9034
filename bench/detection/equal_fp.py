#!/usr/bin/env python3
"""The equal false-positive operating point of each system, from its
per-message scores: the loosest score threshold at which at most
floor(0.005 * ham_n) test ham are flagged, and the spam recall there; and
the area under the ROC curve.

Each system's own default threshold lands it at a different false-positive
rate, which makes recalls hard to compare; here every system is read at the
same rate. The threshold is read off the test set, for every system alike:
a point on each one's ROC curve, for comparison, not a configuration
anyone ships (that is the main table, at each system's defaults).

Input: the format of `spamgate replay --scores` (bench/detection/score.py
writes it too), tab-separated: label, score, verdict, path. A message
spamgate refused (verdict reject or tempfail) counts as +inf: a rule's
refusal does not depend on the score, so it stays flagged at every
threshold. The sweep moves the tag threshold and every refusal stands,
those by reject_score (10) too; below 10, where the thresholds of interest
are, that is exactly spamgate with tag_score moved.
"""
import bisect
import collections
import math

REFUSED = {"reject", "tempfail"}
# The false-positive limit, in ham per thousand: 0.5%.
PER_MILLE = 5

Point = collections.namedtuple("Point", "above spam_k spam_n ham_k ham_n limit")


def load(path):
    """(label, score) for each labelled message of a scores file."""
    scored = []
    with open(path) as f:
        for line in f:
            fields = line.rstrip("\n").split("\t", 3)
            if len(fields) < 2 or fields[0] not in ("spam", "ham"):
                continue
            score = float(fields[1])
            if len(fields) > 2 and fields[2] in REFUSED:
                score = math.inf
            scored.append((fields[0], score))
    return scored


def split(scored):
    spam = [s for label, s in scored if label == "spam"]
    ham = [s for label, s in scored if label == "ham"]
    return spam, ham


def operating_point(scored, per_mille=PER_MILLE):
    """The loosest threshold with at most floor(per_mille/1000 * ham_n)
    ham flagged, as `above`: flagged means score > above. Ties cannot be
    split, so above is the (limit+1)-th highest ham score and every
    message at it stays unflagged. None when more ham than the limit are
    refused outright (no threshold gets there)."""
    spam, ham = split(scored)
    ham.sort(reverse=True)
    limit = len(ham) * per_mille // 1000
    above = ham[limit] if limit < len(ham) else -math.inf
    if above == math.inf:
        return None
    return Point(above, sum(s > above for s in spam), len(spam),
                 sum(h > above for h in ham), len(ham), limit)


def auc(scored):
    """Area under the ROC curve: the chance that a random spam scores
    above a random ham, ties counting half (Mann-Whitney)."""
    spam, ham = split(scored)
    if not spam or not ham:
        return None
    ham.sort()
    wins = 0.0
    for s in spam:
        below, upto = bisect.bisect_left(ham, s), bisect.bisect_right(ham, s)
        wins += below + 0.5 * (upto - below)
    return wins / (len(spam) * len(ham))


def threshold(point):
    """The threshold as text: "> 4.5" (flagged above it)."""
    if point.above == -math.inf:
        return "any score"
    return "> %s" % ("%.3f" % (point.above + 0.0)).rstrip("0").rstrip(".")
