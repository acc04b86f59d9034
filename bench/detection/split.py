#!/usr/bin/env python3
"""Splits the SpamAssassin public corpus into disjoint training and test
sets by time, for bench/detection.sh.

Why by group and not at random: a filter meets mail newer than what it
learned; a random split lets the classifier learn next week's campaign.
The groups' delivery dates (the mbox From_ line, else the top Received
header; the Date header is the sender's word and is forged in spam) show
spam-2 and easy-ham-2 are the OLDER groups (mostly May-Aug 2002) and
spam-1 and easy-ham-1 the newer (Aug-Dec 2002), although the -2 groups
were published later. hard-ham-1 spans both periods, so each of its
messages goes by its own date, at the same cut-off.

Near duplicates: messages are compared by a digest of their body with
whitespace removed and case folded. A test message whose digest is in the
training set is dropped (it would be a learned message), and so is a
repeat within one set (it would count the same mail twice in n).

Output: OUT/{train,test}/{spam,ham}/ with copies of the files,
and a summary on stdout (key=value lines). Files are copied, not linked:
rspamc skips symbolic links when given a directory.
"""
import argparse
import email.utils
import hashlib
import os
import random
import re
import shutil
import sys
import time

GROUPS = {  # group -> (label, set), None: by date
    "spam-2": ("spam", "train"),
    "easy-ham-2": ("ham", "train"),
    "hard-ham-1": ("ham", None),
    "spam-1": ("spam", "test"),
    "easy-ham-1": ("ham", "test"),
}
MAX_MESSAGE = 4 << 20  # bytes read per message: hostile input is normal


def delivery_time(raw):
    """Seconds since the epoch the message was delivered, or None."""
    m = re.match(rb"From \S+\s+(\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4})", raw)
    if m:
        try:
            return time.mktime(time.strptime(m.group(1).decode(), "%a %b %d %H:%M:%S %Y"))
        except ValueError:
            pass
    head = raw.split(b"\n\n", 1)[0].decode("latin-1")
    for header in ("Received", "Date"):
        m = re.search(r"^%s:(.*(?:\n[ \t].*)*)" % header, head, re.M | re.I)
        if m:
            value = m.group(1).rsplit(";", 1)[-1] if header == "Received" else m.group(1)
            parsed = email.utils.parsedate_tz(" ".join(value.split()))
            if parsed and parsed[0] > 1990:
                return email.utils.mktime_tz(parsed)
    return None


def body_digest(raw):
    body = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[-1]
    return hashlib.sha256(re.sub(rb"\s+", b"", body).lower()).hexdigest()


def load(data):
    """[(group, label, set or None, time, digest, path)] in a stable order."""
    out = []
    for group, (label, where) in GROUPS.items():
        directory = os.path.join(data, group)
        for name in sorted(os.listdir(directory)):
            if not name.endswith(".txt"):
                continue
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                raw = f.read(MAX_MESSAGE)
            out.append((group, label, where, delivery_time(raw), body_digest(raw), path))
    return out


def cutoff(messages):
    """The first delivery date of the newer groups' bulk (1st percentile)."""
    times = sorted(t for g, _, w, t, _, _ in messages if w == "test" and t)
    return times[len(times) // 100]


def assign(messages, cut):
    sets = {}
    for group, label, where, t, digest, path in messages:
        if where is None:
            where = "test" if t is not None and t >= cut else "train"
        sets.setdefault(where, []).append((group, label, digest, path))
    return sets


def dedupe(sets, stats):
    seen_train = set()
    kept = {"train": [], "test": []}
    for where in ("train", "test"):
        seen = set()
        for group, label, digest, path in sets.get(where, []):
            if where == "test" and digest in seen_train:
                stats["dropped_cross"] += 1
                continue
            if digest in seen:
                stats["dropped_within_" + where] += 1
                continue
            seen.add(digest)
            kept[where].append((group, label, path))
        if where == "train":
            seen_train = seen
    return kept


def sample(test, quick, seed):
    if not quick:
        return test
    rng = random.Random(seed)
    out = []
    for label in ("spam", "ham"):
        of_label = [m for m in test if m[1] == label]
        out += sorted(rng.sample(of_label, min(quick, len(of_label))))
    return out


def write(out, kept):
    for where, messages in kept.items():
        for group, label, path in messages:
            directory = os.path.join(out, where, label)
            os.makedirs(directory, exist_ok=True)
            link = os.path.join(directory, group + "." + os.path.basename(path))
            shutil.copyfile(path, link)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--quick", type=int, default=0)
    p.add_argument("--seed", type=int, default=13)
    a = p.parse_args()
    messages = load(a.data)
    cut = cutoff(messages)
    stats = {"dropped_cross": 0, "dropped_within_train": 0, "dropped_within_test": 0}
    kept = dedupe(assign(messages, cut), stats)
    kept["test"] = sample(kept["test"], a.quick, a.seed)
    write(a.out, kept)
    print("cutoff=%s" % time.strftime("%Y-%m-%d", time.gmtime(cut)))
    for k, v in stats.items():
        print("%s=%d" % (k, v))
    for where in ("train", "test"):
        for label in ("spam", "ham"):
            groups = {}
            for g, l, _ in kept[where]:
                if l == label:
                    groups[g] = groups.get(g, 0) + 1
            detail = ",".join("%s:%d" % kv for kv in sorted(groups.items()))
            print("%s_%s=%d (%s)" % (where, label, sum(groups.values()), detail))


if __name__ == "__main__":
    sys.exit(main())
