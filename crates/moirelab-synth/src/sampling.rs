//! Parameter draws shared by the stages, including the held-out-factor rule of the transfer
//! protocol: a held-out value is never drawn for train/val samples and always for test ones.

use moirelab_core::rng::Rng;

/// How a sample treats the held-out factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    /// No factor is held out, or the draw is not the held-out factor.
    Free,
    /// Train and val: the held-out value or band is excluded.
    Exclude,
    /// Test: only the held-out value or band.
    Only,
}

/// Log-uniform on `[lo, hi]`.
pub(crate) fn log_uniform(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    (lo.ln() + rng.f64() * (hi.ln() - lo.ln())).exp()
}

/// Log-uniform on `[lo, hi]` with the band `band` excluded (`Exclude`) or alone (`Only`).
/// One uniform draw whatever the mode. A band that leaves nothing falls back to `[lo, hi]`
/// (config validation refuses such bands).
pub(crate) fn log_uniform_band(
    rng: &mut Rng,
    lo: f64,
    hi: f64,
    band: Option<(f64, f64)>,
    hold: Hold,
) -> f64 {
    let u = rng.f64();
    let (l0, l1) = (lo.ln(), hi.ln());
    let free = (l0 + u * (l1 - l0)).exp();
    let Some((a, b)) = band else {
        return free;
    };
    let (a, b) = (a.max(lo).ln(), b.min(hi).ln());
    if a >= b {
        return free;
    }
    match hold {
        Hold::Free => free,
        Hold::Only => (a + u * (b - a)).exp(),
        Hold::Exclude => {
            let (left, right) = (a - l0, l1 - b);
            let t = u * (left + right);
            if left + right <= 0.0 {
                free
            } else if t < left {
                (l0 + t).exp()
            } else {
                (b + (t - left)).exp()
            }
        }
    }
}

/// One of `all`, uniformly; with a held-out value, never it (`Exclude`) or only it (`Only`).
/// One draw whatever the mode.
pub(crate) fn pick<T: Copy + PartialEq>(
    rng: &mut Rng,
    all: &[T],
    held: Option<T>,
    hold: Hold,
) -> T {
    let r = rng.f64();
    let choose = |v: &[T]| v[((r * v.len() as f64) as usize).min(v.len() - 1)];
    match (held, hold) {
        (Some(h), Hold::Only) => h,
        (Some(h), Hold::Exclude) => {
            let rest: Vec<T> = all.iter().copied().filter(|v| *v != h).collect();
            if rest.is_empty() {
                choose(all)
            } else {
                choose(&rest)
            }
        }
        _ => choose(all),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_are_excluded_in_train_and_alone_in_test() {
        let mut rng = Rng::new(7);
        for _ in 0..2000 {
            let e = log_uniform_band(&mut rng, 0.25, 1.5, Some((0.4, 0.6)), Hold::Exclude);
            assert!((0.25..=1.5).contains(&e) && !(0.4..0.6).contains(&e), "{e}");
            let o = log_uniform_band(&mut rng, 0.25, 1.5, Some((0.4, 0.6)), Hold::Only);
            assert!((0.4..=0.6).contains(&o), "{o}");
            let f = log_uniform_band(&mut rng, 0.25, 1.5, Some((0.4, 0.6)), Hold::Free);
            assert!((0.25..=1.5).contains(&f), "{f}");
        }
    }

    #[test]
    fn picks_respect_the_held_out_value_and_cover_the_rest() {
        let mut rng = Rng::new(3);
        let all = [1, 2, 3, 4];
        let mut seen = [0; 5];
        for _ in 0..400 {
            let v = pick(&mut rng, &all, Some(4), Hold::Exclude);
            assert_ne!(v, 4);
            seen[v] += 1;
            assert_eq!(pick(&mut rng, &all, Some(4), Hold::Only), 4);
        }
        assert!(seen[1] > 80 && seen[2] > 80 && seen[3] > 80, "{seen:?}");
    }
}
