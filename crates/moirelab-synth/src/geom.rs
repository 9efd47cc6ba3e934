//! Plane projective geometry: a 3×3 homography from four point pairs (direct linear
//! transform with h33 = 1, Hartley & Zisserman, *Multiple View Geometry*, 2nd ed., §4.1),
//! its inverse, point mapping and the local Jacobian.

/// Row-major 3×3 homography mapping `(x, y, 1)` to `(x', y', w')`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Homography {
    pub m: [f64; 9],
}

impl Homography {
    pub fn identity() -> Homography {
        Homography {
            m: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        }
    }

    /// Affine scale + translation.
    pub fn scale_translate(sx: f64, sy: f64, tx: f64, ty: f64) -> Homography {
        Homography {
            m: [sx, 0.0, tx, 0.0, sy, ty, 0.0, 0.0, 1.0],
        }
    }

    /// The homography mapping `src[i]` to `dst[i]`; `None` when the points are degenerate
    /// (three collinear), i.e. the 8×8 system is singular.
    pub fn from_points(src: &[[f64; 2]; 4], dst: &[[f64; 2]; 4]) -> Option<Homography> {
        let mut a = [[0.0f64; 9]; 8];
        for i in 0..4 {
            let [x, y] = src[i];
            let [u, v] = dst[i];
            a[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
            a[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
        }
        let h = solve8(a)?;
        Some(Homography {
            m: [h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], 1.0],
        })
    }

    #[inline]
    pub fn apply(&self, x: f64, y: f64) -> [f64; 2] {
        let m = &self.m;
        let w = m[6] * x + m[7] * y + m[8];
        [
            (m[0] * x + m[1] * y + m[2]) / w,
            (m[3] * x + m[4] * y + m[5]) / w,
        ]
    }

    /// `self` after `other` (first `other`, then `self`).
    pub fn compose(&self, other: &Homography) -> Homography {
        let (a, b) = (&self.m, &other.m);
        let mut m = [0.0; 9];
        for r in 0..3 {
            for c in 0..3 {
                m[r * 3 + c] = (0..3).map(|k| a[r * 3 + k] * b[k * 3 + c]).sum();
            }
        }
        Homography { m }
    }

    /// Inverse via the adjugate; `None` when singular.
    pub fn inverse(&self) -> Option<Homography> {
        let m = &self.m;
        let c = [
            m[4] * m[8] - m[5] * m[7],
            m[2] * m[7] - m[1] * m[8],
            m[1] * m[5] - m[2] * m[4],
            m[5] * m[6] - m[3] * m[8],
            m[0] * m[8] - m[2] * m[6],
            m[2] * m[3] - m[0] * m[5],
            m[3] * m[7] - m[4] * m[6],
            m[1] * m[6] - m[0] * m[7],
            m[0] * m[4] - m[1] * m[3],
        ];
        let det = m[0] * c[0] + m[1] * c[3] + m[2] * c[6];
        if det.abs() < 1e-12 {
            return None;
        }
        Some(Homography {
            m: c.map(|v| v / det),
        })
    }

    /// Jacobian `[[du/dx, du/dy], [dv/dx, dv/dy]]` of the mapping at `(x, y)`.
    pub fn jacobian(&self, x: f64, y: f64) -> [[f64; 2]; 2] {
        let m = &self.m;
        let w = m[6] * x + m[7] * y + m[8];
        let u = (m[0] * x + m[1] * y + m[2]) / w;
        let v = (m[3] * x + m[4] * y + m[5]) / w;
        [
            [(m[0] - u * m[6]) / w, (m[1] - u * m[7]) / w],
            [(m[3] - v * m[6]) / w, (m[4] - v * m[7]) / w],
        ]
    }
}

/// Gaussian elimination with partial pivoting on an 8×9 augmented matrix.
fn solve8(mut a: [[f64; 9]; 8]) -> Option<[f64; 8]> {
    for col in 0..8 {
        let piv = (col..8).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[piv][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, piv);
        for r in 0..8 {
            if r != col {
                let f = a[r][col] / a[col][col];
                if f != 0.0 {
                    for c in col..9 {
                        a[r][c] -= f * a[col][c];
                    }
                }
            }
        }
    }
    let mut x = [0.0; 8];
    for i in 0..8 {
        x[i] = a[i][8] / a[i][i];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_points_map_exactly_and_inverse_round_trips() {
        let src = [[0.0, 0.0], [100.0, 0.0], [100.0, 60.0], [0.0, 60.0]];
        let dst = [[12.0, 9.0], [118.0, 14.0], [110.0, 80.0], [6.0, 71.0]];
        let h = Homography::from_points(&src, &dst).unwrap();
        for (s, d) in src.iter().zip(&dst) {
            let p = h.apply(s[0], s[1]);
            assert!((p[0] - d[0]).abs() < 1e-9 && (p[1] - d[1]).abs() < 1e-9);
        }
        let inv = h.inverse().unwrap();
        let q = inv.apply(64.0, 40.0);
        let back = h.apply(q[0], q[1]);
        assert!((back[0] - 64.0).abs() < 1e-9 && (back[1] - 40.0).abs() < 1e-9);
        let id = h.compose(&inv);
        let p = id.apply(3.0, 4.0);
        assert!((p[0] - 3.0).abs() < 1e-9 && (p[1] - 4.0).abs() < 1e-9);
    }

    #[test]
    fn jacobian_matches_finite_differences() {
        let src = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]];
        let dst = [[0.1, 0.0], [0.9, 0.1], [1.0, 0.8], [0.0, 1.1]];
        let h = Homography::from_points(&src, &dst).unwrap();
        let j = h.jacobian(0.3, 0.6);
        let e = 1e-6;
        let a = h.apply(0.3 + e, 0.6);
        let b = h.apply(0.3, 0.6);
        assert!(((a[0] - b[0]) / e - j[0][0]).abs() < 1e-4);
        assert!(((a[1] - b[1]) / e - j[1][0]).abs() < 1e-4);
    }

    #[test]
    fn collinear_points_are_rejected() {
        let src = [[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [0.0, 1.0]];
        let dst = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]];
        assert!(Homography::from_points(&src, &dst).is_none());
    }
}
