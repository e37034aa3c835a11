//! The few distribution functions the estimates need: the chi-square's upper tail
//! (the pre-trend test, and through one degree of freedom the normal's two-sided
//! p-value) and the standard normal's quantiles used for intervals and power.

/// The standard normal's 97.5% quantile: a two-sided 95% interval's half-width in
/// standard errors.
pub const Z_975: f64 = 1.959_963_984_540_054;
/// The standard normal's 80% quantile: power 80%.
pub const Z_80: f64 = 0.841_621_233_572_914_3;
/// The standard normal's 75% quantile: its interquartile range is twice this.
pub const Z_75: f64 = 0.674_489_750_196_081_7;

/// P(X > x) for X chi-square distributed with `df` degrees of freedom.
pub fn chi_square_upper_tail(x: f64, df: usize) -> f64 {
    if x <= 0.0 || df == 0 {
        return 1.0;
    }
    upper_regularized_gamma(df as f64 / 2.0, x / 2.0)
}

/// The two-sided p-value of a normal test statistic `z`: P(|Z| > |z|), which is
/// P(X > z²) for X chi-square with one degree of freedom.
pub fn two_sided_p(z: f64) -> f64 {
    chi_square_upper_tail(z * z, 1)
}

/// Q(a, x) = Γ(a, x) / Γ(a): a series below x = a + 1, a continued fraction (modified
/// Lentz) above, as in Numerical Recipes §6.2.
fn upper_regularized_gamma(a: f64, x: f64) -> f64 {
    const EPS: f64 = 1e-15;
    const TINY: f64 = 1e-300;
    let front = (-x + a * x.ln() - ln_gamma(a)).exp();
    if x < a + 1.0 {
        let (mut term, mut sum, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..10_000 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * EPS {
                break;
            }
        }
        (1.0 - sum * front).max(0.0)
    } else {
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / TINY;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..10_000 {
            let an = -f64::from(i) * (f64::from(i) - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < TINY {
                d = TINY;
            }
            c = b + an / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            let step = d * c;
            h *= step;
            if (step - 1.0).abs() < EPS {
                break;
            }
        }
        front * h
    }
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, nine coefficients: about 15 digits).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1 − x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = COEFFICIENTS[0];
    for (i, c) in COEFFICIENTS.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Critical values of the chi-square distribution as printed in the NIST/SEMATECH
    /// e-Handbook of Statistical Methods, table 1.3.6.7.4 (upper-tail probabilities).
    #[test]
    fn upper_tails_match_the_published_critical_values() {
        for (df, critical, tail) in [
            (1, 3.841, 0.05),
            (1, 6.635, 0.01),
            (2, 5.991, 0.05),
            (5, 11.070, 0.05),
            (10, 23.209, 0.01),
            (20, 31.410, 0.05),
            (3, 0.352, 0.95),
            (30, 50.892, 0.01),
        ] {
            let computed = chi_square_upper_tail(critical, df);
            // The table gives three decimals of the critical value.
            assert!(
                (computed - tail).abs() < tail * 2e-3 + 2e-5,
                "df {df}, x {critical}: {computed} against {tail}"
            );
        }
    }

    /// The normal's two-sided tail at its own quantiles, which come from the
    /// Abramowitz–Stegun table 26.1 (to the digits printed there).
    #[test]
    fn the_normal_tails_match_its_quantiles() {
        assert!((two_sided_p(Z_975) - 0.05).abs() < 1e-12);
        assert!((two_sided_p(Z_80) - 0.4).abs() < 1e-12);
        assert!((two_sided_p(Z_75) - 0.5).abs() < 1e-12);
        assert!((two_sided_p(2.575_829_303_548_901) - 0.01).abs() < 1e-12);
        assert_eq!(two_sided_p(0.0), 1.0);
    }

    #[test]
    fn ln_gamma_matches_factorials_and_the_half() {
        for (x, expected) in [(1.0, 1.0_f64), (5.0, 24.0), (10.0, 362_880.0)] {
            assert!((ln_gamma(x) - expected.ln()).abs() < 1e-12, "{x}");
        }
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
    }
}
