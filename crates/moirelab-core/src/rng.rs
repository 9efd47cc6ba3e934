//! A small, fast, portable PRNG (xoshiro256**, Blackman & Vigna 2018) seeded through
//! SplitMix64. Owning it keeps every generated image, split and augmentation stable across
//! dependency upgrades and platforms; streams are derived from (seed, ids) so per-sample work
//! is independent of thread count and of the order samples are processed in.

/// Seeded generator. `Clone` is cheap; the full state is four `u64`s (see [`Rng::state`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    /// Generator for one seed.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let s = [
            splitmix(&mut x),
            splitmix(&mut x),
            splitmix(&mut x),
            splitmix(&mut x),
        ];
        Rng { s }
    }

    /// An independent stream for `(seed, ids...)`, e.g. `(seed, [sample_index, STAGE_B])`.
    pub fn derive(seed: u64, ids: &[u64]) -> Self {
        let mut x = seed ^ 0x6d6f_6972_656c_6162; // "moirelab"
        let mut h = splitmix(&mut x);
        for &id in ids {
            let mut y = h ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            h = splitmix(&mut y);
        }
        Rng::new(h)
    }

    /// Snapshot of the state (for checkpoints / exact resume).
    pub fn state(&self) -> [u64; 4] {
        self.s
    }

    /// Restore from [`Rng::state`].
    pub fn from_state(s: [u64; 4]) -> Self {
        Rng { s }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 bits.
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, 1) as f32.
    pub fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u32 << 24) as f32)
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }

    /// Uniform integer in [0, n). `n == 0` returns 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Lemire's multiply-shift; the tiny bias is irrelevant at our n.
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// True with probability `p`.
    pub fn bernoulli(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Standard normal (Box–Muller; one value per call, simple and deterministic).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.f64().max(f64::MIN_POSITIVE);
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }

    /// Pick one element uniformly; `None` on an empty slice.
    pub fn choose<'a, T>(&mut self, v: &'a [T]) -> Option<&'a T> {
        if v.is_empty() {
            None
        } else {
            Some(&v[self.below(v.len() as u64) as usize])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_streams_differ() {
        let mut a = Rng::derive(42, &[1, 2]);
        let mut b = Rng::derive(42, &[1, 2]);
        let mut c = Rng::derive(42, &[2, 1]);
        let va: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let vb: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let vc: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(va, vb);
        assert_ne!(va, vc);
    }

    #[test]
    fn state_round_trip_resumes_the_stream() {
        let mut a = Rng::new(7);
        a.next_u64();
        let mut b = Rng::from_state(a.state());
        assert_eq!(a.next_u64(), b.next_u64());
    }

    #[test]
    fn uniform_and_normal_have_sane_moments() {
        let mut r = Rng::new(1);
        let n = 20_000;
        let mean_u: f64 = (0..n).map(|_| r.f64()).sum::<f64>() / n as f64;
        let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean_n = xs.iter().sum::<f64>() / n as f64;
        let var_n = xs.iter().map(|x| (x - mean_n).powi(2)).sum::<f64>() / n as f64;
        assert!((mean_u - 0.5).abs() < 0.01);
        assert!(mean_n.abs() < 0.03 && (var_n - 1.0).abs() < 0.05);
        assert!((0..1000).all(|_| r.below(3) < 3));
    }
}
