//! The wild cluster bootstrap of the estimates' standard errors: each draw multiplies
//! every school's influence on the estimates by one random weight (a school is its
//! own cluster: all its school years share the weight), as R's `did` does with its
//! multiplier bootstrap.
//!
//! The weights are Webb's six-point distribution rather than `did`'s Mammen weights:
//! with few treated schools (a hub reaches a handful) two-point weights give few
//! distinct draws, and Webb (2023, Canadian Journal of Economics) recommends these.

use crate::distribution::Z_75;

/// How the bootstrap draws: the same settings give the same standard errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bootstrap {
    pub draws: usize,
    pub seed: u64,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Self {
            draws: 999,
            seed: 2022,
        }
    }
}

impl Bootstrap {
    /// The bootstrap standard error of each statistic, given its influence function
    /// (one value per unit, all of the same length `n`): the interquartile range of
    /// the draws of Σ ψᵢ vᵢ / n over the normal's, as `did` takes it (robust to a few
    /// extreme draws).
    pub fn standard_errors(&self, influences: &[&[f64]]) -> Vec<f64> {
        let Some(n) = influences.first().map(|f| f.len()) else {
            return Vec::new();
        };
        let mut draws = vec![Vec::with_capacity(self.draws); influences.len()];
        let mut random = SplitMix64(self.seed);
        let mut multipliers = vec![0.0; n];
        for _ in 0..self.draws {
            for v in &mut multipliers {
                *v = random.webb();
            }
            for (influence, draws) in influences.iter().zip(&mut draws) {
                let sum: f64 = influence.iter().zip(&multipliers).map(|(f, v)| f * v).sum();
                draws.push(sum / n as f64);
            }
        }
        draws
            .into_iter()
            .map(|mut d| {
                d.sort_by(f64::total_cmp);
                (quantile(&d, 0.75) - quantile(&d, 0.25)) / (2.0 * Z_75)
            })
            .collect()
    }
}

/// The empirical quantile of sorted values: the smallest value whose share of values
/// at or below it reaches `p` (R's type 1, as `did` takes it).
fn quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// SplitMix64 (Steele, Lea and Flood 2014): a small generator whose sequence is
/// fixed by its definition, so an estimate reproduces on any build.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// One of ±√(1/2), ±1, ±√(3/2), each with probability 1/6: mean 0, variance 1.
    fn webb(&mut self) -> f64 {
        const VALUES: [f64; 6] = [
            -1.224_744_871_391_589,
            -1.0,
            -std::f64::consts::FRAC_1_SQRT_2,
            std::f64::consts::FRAC_1_SQRT_2,
            1.0,
            1.224_744_871_391_589,
        ];
        // 6 divides 2⁶⁴ − 16 values evenly; the bias of the rest is 2⁻⁶⁰.
        VALUES[(self.next() % 6) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webb_weights_have_mean_zero_and_variance_one() {
        let mut random = SplitMix64(7);
        let draws: Vec<f64> = (0..600_000).map(|_| random.webb()).collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        let variance = draws.iter().map(|d| d * d).sum::<f64>() / draws.len() as f64;
        assert!(mean.abs() < 5e-3, "{mean}");
        assert!((variance - 1.0).abs() < 5e-3, "{variance}");
    }

    /// For a mean's influence function ψᵢ = xᵢ − x̄ the bootstrap standard error
    /// approaches the textbook √(Σψᵢ²)/n.
    #[test]
    fn the_bootstrap_error_of_a_mean_approaches_the_analytic_one() {
        let x: Vec<f64> = (0..400).map(|i| f64::from((i * 37) % 101)).collect();
        let mean = x.iter().sum::<f64>() / x.len() as f64;
        let influence: Vec<f64> = x.iter().map(|v| v - mean).collect();
        let analytic = influence.iter().map(|f| f * f).sum::<f64>().sqrt() / influence.len() as f64;
        let bootstrap = Bootstrap {
            draws: 4999,
            seed: 1,
        }
        .standard_errors(&[&influence]);
        assert!(
            (bootstrap[0] / analytic - 1.0).abs() < 0.05,
            "{bootstrap:?} {analytic}"
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_errors() {
        let influence = [1.0, -2.0, 0.5, 3.0];
        let b = Bootstrap::default();
        assert_eq!(
            b.standard_errors(&[&influence]),
            b.standard_errors(&[&influence])
        );
    }
}
