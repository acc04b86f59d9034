//! Tuning aid for the classifier's constants, run on a validation split
//! made *inside* a training set (never on the test set):
//!
//! `bayes_tune TRAIN_DIR VALID_DIR [OUT.tsv]`, each dir holding `spam/`
//! and `ham/`. It tokenizes every message once, learns TRAIN, then scores
//! VALID under a grid of Robinson's s and x, the minimum strength and the
//! number of tokens combined, and prints how many spam and ham land in
//! each probability band. With OUT.tsv it writes each validation
//! message's probability under the first value of each grid axis (path, class, p),
//! for merging with `spamgate replay --list` rule scores.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use spamgate::bayes::combine::{self, Counts, Tuning};
use spamgate::bayes::tokenize;
use spamgate::offline::replay::{message_files, read_messages};

struct Sample {
    path: PathBuf,
    spam: bool,
    hashes: Vec<u64>,
}

fn load(dir: &Path, spam: bool) -> Vec<Sample> {
    let files = message_files(dir).expect("message dir");
    files
        .into_iter()
        .filter_map(|path| {
            let raw = read_messages(&path).ok()?.into_iter().next()?;
            let raw = spamgate::offline::canonical(&raw);
            let hashes = tokenize::tokenize(&raw).hashes().collect();
            Some(Sample { path, spam, hashes })
        })
        .collect()
}

fn both(dir: &Path) -> Vec<Sample> {
    let mut all = load(&dir.join("spam"), true);
    all.extend(load(&dir.join("ham"), false));
    all
}

struct Model {
    counts: HashMap<u64, Counts>,
    nspam: u64,
    nham: u64,
}

impl Model {
    fn learn(train: &[Sample]) -> Model {
        let mut counts: HashMap<u64, Counts> = HashMap::new();
        for s in train {
            for h in &s.hashes {
                let c = counts.entry(*h).or_default();
                if s.spam {
                    c.spam += 1;
                } else {
                    c.ham += 1;
                }
            }
        }
        let nspam = train.iter().filter(|s| s.spam).count() as u64;
        Model {
            counts,
            nspam,
            nham: train.len() as u64 - nspam,
        }
    }

    fn score(&self, sample: &Sample, t: Tuning) -> f64 {
        let probabilities = sample.hashes.iter().enumerate().filter_map(|(i, h)| {
            let c = self.counts.get(h)?;
            Some((i, combine::robinson(*c, self.nspam, self.nham, t)))
        });
        let fs: Vec<f64> = combine::strongest(probabilities, t)
            .into_iter()
            .map(|(_, f)| f)
            .collect();
        combine::fisher(&fs)
    }
}

const EDGES: [f64; 6] = [0.999, 0.99, 0.95, 0.80, 0.50, 0.05];

fn report(model: &Model, valid: &[Sample], p: Tuning) {
    let mut spam = [0usize; 6];
    let mut ham = [0usize; 6];
    for sample in valid {
        let prob = model.score(sample, p);
        let counts = if sample.spam { &mut spam } else { &mut ham };
        for (i, edge) in EDGES.iter().enumerate() {
            if prob >= *edge {
                counts[i] += 1;
            }
        }
    }
    let row = |c: [usize; 6]| {
        c.iter()
            .map(|n| format!("{n:4}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "s={:<5} x={:<5} min={:<5} max={:<4} spam≥[.999 .99 .95 .80 .50 .05] {}  ham {}",
        p.s,
        p.x,
        p.min_strength,
        p.max_tokens,
        row(spam),
        row(ham)
    );
}

/// A grid axis from the environment (comma list), or its default.
fn grid(name: &str, default: &str) -> Vec<f64> {
    let list = std::env::var(name).unwrap_or_else(|_| default.to_string());
    list.split(',')
        .map(|v| v.trim().parse().expect(name))
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (train, valid) = (both(Path::new(&args[1])), both(Path::new(&args[2])));
    let model = Model::learn(&train);
    println!(
        "learned {} spam, {} ham, {} tokens; validating on {} spam, {} ham",
        model.nspam,
        model.nham,
        model.counts.len(),
        valid.iter().filter(|s| s.spam).count(),
        valid.iter().filter(|s| !s.spam).count()
    );
    for s in grid("S", "1,0.5") {
        for x in grid("X", "0.5,0.538") {
            for min_strength in grid("MIN", "0.1,0.25") {
                for max_tokens in grid("MAX", "150,300,600").into_iter().map(|m| m as usize) {
                    let p = Tuning {
                        s,
                        x,
                        min_strength,
                        max_tokens,
                    };
                    report(&model, &valid, p);
                }
            }
        }
    }
    if let Some(out) = args.get(3) {
        let first = |name, default| grid(name, default)[0];
        let chosen = Tuning {
            s: first("S", "1"),
            x: first("X", "0.5"),
            min_strength: first("MIN", "0.1"),
            max_tokens: first("MAX", "150") as usize,
        };
        let lines: Vec<String> = valid
            .iter()
            .map(|v| {
                let class = if v.spam { "spam" } else { "ham" };
                format!(
                    "{}\t{class}\t{:.6}",
                    v.path.display(),
                    model.score(v, chosen)
                )
            })
            .collect();
        std::fs::write(out, lines.join("\n") + "\n").expect("write OUT");
    }
}
