#!/usr/bin/env python3
"""Scores the test messages with a running spamd (through spamc) or
rspamd (HTTP /checkv2 with the raw message), JOBS at a time, and prints
the counts bench/detection/report.py reads, plus the rules that fire most
on ham and on spam (the replay's artefacts show up there), and with
--scores-out each message's score (the format of `spamgate replay
--scores`: label, score, verdict, path), from which report.py reads the
equal false-positive operating point.

Each request is bounded (TIMEOUT seconds, messages cut at MAX_MESSAGE);
a message that fails to score is counted as not flagged and reported
(its score is written as -inf, verdict "error", so the sweep agrees).
"""
import argparse
import collections
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import urllib.request

MAX_MESSAGE = 10 << 20
TIMEOUT = 120
SA_RULE = re.compile(r"^\s*-?\d+(?:\.\d+)?\s+([A-Z0-9_]+)\s", re.M)
# rspamd actions that mean "spam" for the strict verdict (add_header and up).
RSPAMD_SPAM = {"add header", "rewrite subject", "reject"}


def read(path):
    with open(path, "rb") as f:
        return f.read(MAX_MESSAGE)


def score_sa(port, path):
    """(score, flagged, rules) from spamc -R; flagged when score >= 5.0."""
    out = subprocess.run(
        ["spamc", "-d", "127.0.0.1", "-p", str(port), "-R", "-x",
         "-s", str(MAX_MESSAGE), "-t", str(TIMEOUT)],
        input=read(path), capture_output=True, timeout=TIMEOUT + 10)
    text = out.stdout.decode("utf-8", "replace")
    first = text.split("\n", 1)[0]
    score, threshold = (float(x) for x in first.split("/"))
    rules = SA_RULE.findall(text.split("\n", 1)[1] if "\n" in text else "")
    return score, {"strict": score >= threshold}, rules


def score_rspamd(port, path):
    """(score, flagged, rules) from /checkv2: strict = add header or more,
    loose = any action but "no action" (greylist and soft reject count)."""
    request = urllib.request.Request(
        "http://127.0.0.1:%d/checkv2" % port, data=read(path), method="POST")
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        answer = json.load(response)
    action = answer.get("action", "no action")
    rules = [name for name, s in answer.get("symbols", {}).items() if s.get("score", 0) != 0]
    flagged = {"strict": action in RSPAMD_SPAM, "loose": action != "no action"}
    return answer.get("score", 0.0), flagged, rules


def messages(test):
    for label in ("spam", "ham"):
        directory = os.path.join(test, label)
        for name in sorted(os.listdir(directory)):
            yield label, os.path.join(directory, name)


def run(args, scores):
    """Counts per label and verdict, rule hits per label, errors; writes
    one line a message to `scores` (a file, in completion order)."""
    scorer = {"sa": score_sa, "rspamd": score_rspamd}[args.system]
    counts = collections.Counter()
    hits = {"spam": collections.Counter(), "ham": collections.Counter()}
    errors = 0
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        jobs = {pool.submit(scorer, args.port, p): (label, p) for label, p in messages(args.test)}
        for done in concurrent.futures.as_completed(jobs):
            label, path = jobs[done]
            counts[label] += 1
            try:
                score, flagged, rules = done.result()
            except Exception as e:  # counted as not flagged, and said
                errors += 1
                print("score error %s: %s" % (path, e), file=sys.stderr)
                scores.write("%s\t-inf\terror\t%s\n" % (label, path))
                continue
            for verdict, yes in flagged.items():
                counts[(label, verdict)] += int(yes)
            hits[label].update(set(rules))
            word = "flagged" if flagged["strict"] else "not flagged"
            scores.write("%s\t%r\t%s\t%s\n" % (label, float(score), word, path))
    return counts, hits, errors


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--system", choices=["sa", "rspamd"], required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--test", required=True)
    p.add_argument("--rules-out", required=True)
    p.add_argument("--scores-out", default=os.devnull,
                   help="per-message scores: label, score, verdict, path (tab-separated)")
    a = p.parse_args()
    with open(a.scores_out, "w") as scores:
        counts, hits, errors = run(a, scores)
    for verdict in ("strict", "loose"):
        if counts[("spam", verdict)] or counts[("ham", verdict)] or verdict == "strict":
            print("%s\t%d\t%d\t%d\t%d\t%d" % (verdict, counts[("spam", verdict)], counts["spam"],
                                              counts[("ham", verdict)], counts["ham"], errors))
    with open(a.rules_out, "w") as f:
        for label in ("ham", "spam"):
            n = max(1, counts[label])
            f.write("top rules on %s (%d messages):\n" % (label, counts[label]))
            for rule, k in hits[label].most_common(15):
                f.write("  %-32s %5d  %6.2f%%\n" % (rule, k, 100 * k / n))


if __name__ == "__main__":
    main()
