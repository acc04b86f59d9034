//! From token counts to one spam probability: Gary Robinson's f(w) for
//! each token, then Fisher's chi-square combining of the most telling
//! ones (the method SpamAssassin and SpamBayes use).
//!
//! f(w) pulls rarely seen tokens towards "don't know" (x = 0.5, with the
//! strength s = 1 of one message): a token seen once in spam is 0.75, not
//! 1.0. Fisher's method then asks how unlikely the set of f values would
//! be if they were random, once for spamminess and once for hamminess;
//! I = (1 + H − S) / 2 lands near 1 or 0 when the evidence agrees and
//! near 0.5 when it conflicts, which is what makes the "uncertain" band
//! meaningful.

/// The strength of the background belief, in messages.
const S: f64 = 1.0;
/// The background belief: an unknown token says nothing.
const X: f64 = 0.5;
/// Tokens closer to 0.5 than this are left out: they add noise, not evidence.
pub const MIN_STRENGTH: f64 = 0.1;
/// The most tokens combined. SpamAssassin takes 150 of its unigrams; a
/// message here gives about five times as many tokens (each word and its
/// sparse pairs), so 150 would keep only the few phrases of its loudest
/// paragraph. 500 was chosen on a validation split inside the training
/// set (docs/classifier.md): more spam lands at >= 0.95, no more ham.
pub const MAX_TOKENS: usize = 500;

/// How often a token was seen in each class, and how many messages of
/// each class were learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub spam: u32,
    pub ham: u32,
}

/// The constants of the combining, as the classifier ships them; other
/// values only serve tuning (`examples/bayes_tune.rs`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tuning {
    /// Robinson's s: the strength of the background belief, in messages.
    pub s: f64,
    /// Robinson's x: the background belief.
    pub x: f64,
    /// Tokens closer to 0.5 than this are left out.
    pub min_strength: f64,
    /// The most tokens combined.
    pub max_tokens: usize,
}

pub const SHIPPED: Tuning = Tuning {
    s: S,
    x: X,
    min_strength: MIN_STRENGTH,
    max_tokens: MAX_TOKENS,
};

/// Robinson's f(w): the token's spam probability, tempered by how often
/// it was seen.
pub fn token_probability(c: Counts, nspam: u64, nham: u64) -> f64 {
    robinson(c, nspam, nham, SHIPPED)
}

/// [`token_probability`] under other constants.
pub fn robinson(c: Counts, nspam: u64, nham: u64, t: Tuning) -> f64 {
    let n = f64::from(c.spam) + f64::from(c.ham);
    let spam_ratio = f64::from(c.spam) / nspam.max(1) as f64;
    let ham_ratio = f64::from(c.ham) / nham.max(1) as f64;
    let p = match spam_ratio + ham_ratio {
        0.0 => t.x,
        sum => spam_ratio / sum,
    };
    (t.s * t.x + n * p) / (t.s + n)
}

/// The survival function of chi-square with `dof` (even) degrees of
/// freedom: P(χ² ≥ x), by the series that is exact for even dof.
pub fn chi2q(x: f64, dof: usize) -> f64 {
    let m = x / 2.0;
    let mut term = (-m).exp();
    let mut sum = term;
    for i in 1..dof / 2 {
        term *= m / i as f64;
        sum += term;
    }
    sum.min(1.0)
}

/// Fisher combining of token probabilities into one spam probability.
pub fn fisher(probabilities: &[f64]) -> f64 {
    if probabilities.is_empty() {
        return 0.5;
    }
    let clamp = |p: f64| p.clamp(1e-9, 1.0 - 1e-9);
    let (mut ln_f, mut ln_1f) = (0.0, 0.0);
    for &p in probabilities {
        ln_f += clamp(p).ln();
        ln_1f += (1.0 - clamp(p)).ln();
    }
    let dof = 2 * probabilities.len();
    let h = chi2q(-2.0 * ln_f, dof);
    let s = chi2q(-2.0 * ln_1f, dof);
    (1.0 + h - s) / 2.0
}

/// The tokens worth combining, most telling first: `(index, f)` of those
/// at least [`MIN_STRENGTH`] away from 0.5, at most [`MAX_TOKENS`].
pub fn significant(probabilities: impl Iterator<Item = (usize, f64)>) -> Vec<(usize, f64)> {
    strongest(probabilities, SHIPPED)
}

/// [`significant`] under other constants.
pub fn strongest(
    probabilities: impl Iterator<Item = (usize, f64)>,
    t: Tuning,
) -> Vec<(usize, f64)> {
    let mut telling: Vec<(usize, f64)> = probabilities
        .filter(|(_, f)| (f - 0.5).abs() >= t.min_strength)
        .collect();
    let strength = |f: f64| (f - 0.5).abs();
    telling.sort_unstable_by(|a, b| strength(b.1).total_cmp(&strength(a.1)).then(a.0.cmp(&b.0)));
    telling.truncate(t.max_tokens);
    telling
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn token_probability_table() {
        let c = |spam, ham| Counts { spam, ham };
        let cases = [
            (c(0, 0), 100, 100, 0.5),
            (c(1, 0), 100, 100, 0.75),
            (c(0, 1), 100, 100, 0.25),
            (c(10, 0), 100, 100, (0.5 + 10.0) / 11.0),
            (c(5, 5), 100, 100, 0.5),
            // 5 of 10 spam vs 5 of 100 ham: p = 0.5/0.55.
            (c(5, 5), 10, 100, (0.5 + 10.0 * (0.5 / 0.55)) / 11.0),
        ];
        for (counts, ns, nh, want) in cases {
            let got = token_probability(counts, ns, nh);
            assert!(close(got, want), "{counts:?} {ns} {nh}: {got} != {want}");
        }
    }

    #[test]
    fn chi2q_known_values() {
        // P(χ²₂ ≥ x) = e^{-x/2}; P(χ²₄ ≥ x) = e^{-x/2}(1 + x/2).
        assert!(close(chi2q(2.0, 2), (-1.0f64).exp()));
        assert!(close(chi2q(3.0, 4), (-1.5f64).exp() * 2.5));
        assert!(close(chi2q(0.0, 10), 1.0));
        assert!(chi2q(1000.0, 10) < 1e-100);
    }

    #[test]
    fn fisher_directions() {
        assert!(fisher(&[0.99; 20]) > 0.99);
        assert!(fisher(&[0.01; 20]) < 0.01);
        assert!(close(fisher(&[]), 0.5));
        let mixed = fisher(&[0.99, 0.01, 0.99, 0.01]);
        assert!((mixed - 0.5).abs() < 0.1, "{mixed}");
        assert!(fisher(&[0.0, 1.0]).is_finite());
    }

    #[test]
    fn significant_orders_and_caps() {
        let probs = (0..2 * MAX_TOKENS + 100).map(|i| {
            (
                i,
                if i % 2 == 0 {
                    0.55
                } else {
                    0.9 + (i as f64) / 100_000.0
                },
            )
        });
        let picked = significant(probs);
        assert_eq!(picked.len(), MAX_TOKENS);
        assert!(picked.iter().all(|(_, f)| *f > 0.9));
        assert!(picked.windows(2).all(|w| w[0].1 >= w[1].1));
    }
}
