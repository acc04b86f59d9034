#!/usr/bin/env bash
# Rule engine benchmark: load time, memory and msgs/s on one core for
# 10, 1,000 and 10,000 rules on 100 KB messages. Evaluation runs on one
# thread; `taskset` pins the process to one core when available (regex
# compilation at load may still use the other cores' threads, pinned too).
# Prints wall-clock msgs/s and CPU time per message (steadier when the
# machine is shared: "msgs/s per core" is 1 s over that CPU time).
# BENCH_SECONDS sets the length of each measurement (default 3);
# BENCH_MESSAGES runs a fixed number of messages instead (for `perf stat`);
# BENCH_RULES=10000 (or a list, 10,1000) measures only those sizes.
# BENCH_RULES_FILE=F and BENCH_MESSAGE_FILE=M measure a rule file and a
# message of your own (e.g. your rules/ on a message from your mail).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --ignore-rust-version --example rules_bench
bin="${CARGO_TARGET_DIR:-target}/release/examples/rules_bench"
if command -v taskset >/dev/null; then
    exec taskset -c 0 "$bin"
fi
exec "$bin"
