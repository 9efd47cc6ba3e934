//! Attention-in-region metrics (docs/GRADCAM.md), on the non-negative upsampled map `L`, never on
//! the min-max normalised one (normalisation shifts mass toward low values):
//!
//! ```text
//! mass(R)   = Σ_{p∈R} L(p) / Σ_p L(p)          energy-based pointing game (Wang et al. 2020)
//! lift(R)   = mass(R) / (|R| / |image|)         1 = no preference
//! pointing  = 1[argmax L ∈ R dilated by t px]   pointing game (Zhang et al. 2016)
//! rank(R)   = |top-|R| pixels of L ∩ R| / |R|   relevance rank accuracy (Arras et al. 2022)
//! ```

use crate::overlay::Map2;
use moirelab_core::dataset_format::RegionMasks;
use moirelab_core::run::RegionStats;
use std::collections::BTreeMap;

/// Precomputed facts about one map, shared by all regions of an image.
#[derive(Debug, Clone)]
pub struct MapStats<'a> {
    map: &'a Map2,
    total: f64,
    argmax: usize,
    /// Pixel indices by decreasing value, ties by increasing index (deterministic).
    order: Vec<u32>,
}

impl<'a> MapStats<'a> {
    /// `None` for a map without mass (all zeros): it points nowhere, so it has no region
    /// stats rather than made-up ones.
    pub fn new(map: &'a Map2) -> Option<MapStats<'a>> {
        let clean = |v: f32| if v.is_finite() && v > 0.0 { v } else { 0.0 };
        let total: f64 = map.data.iter().map(|&v| clean(v) as f64).sum();
        if total <= 0.0 {
            return None;
        }
        // Non-negative finite floats order like their bit patterns, so one u64 key per pixel
        // (complemented value bits above the index) sorts by decreasing value with ties by
        // increasing index: a plain integer sort, ~5x faster than a comparison sort through a
        // closure, which matters because this runs for every probe, method and target of
        // every dump.
        let mut keys: Vec<u64> = map
            .data
            .iter()
            .enumerate()
            .map(|(i, &v)| (u64::from(!clean(v).to_bits()) << 32) | i as u64)
            .collect();
        keys.sort_unstable();
        let order: Vec<u32> = keys.iter().map(|&k| k as u32).collect();
        Some(MapStats {
            map,
            total,
            argmax: order[0] as usize,
            order,
        })
    }

    /// Stats of one region (row-major mask of the map's size). `None` when the region is
    /// empty or the mask size does not match.
    pub fn region(&self, mask: &[bool], tolerance: u32) -> Option<RegionStats> {
        let n = self.map.data.len();
        if mask.len() != n {
            return None;
        }
        let area = mask.iter().filter(|&&b| b).count();
        if area == 0 {
            return None;
        }
        let inside: f64 = self
            .map
            .data
            .iter()
            .zip(mask)
            .filter(|(_, &m)| m)
            .map(|(&v, _)| {
                if v.is_finite() && v > 0.0 {
                    v as f64
                } else {
                    0.0
                }
            })
            .sum();
        let mass = inside / self.total;
        let lift = mass / (area as f64 / n as f64);
        let hits = self.order[..area]
            .iter()
            .filter(|&&p| mask[p as usize])
            .count();
        Some(RegionStats {
            mass,
            lift,
            pointing: if self.points_into(mask, tolerance) {
                1.0
            } else {
                0.0
            },
            rank: hits as f64 / area as f64,
        })
    }

    /// Pointing game: is the argmax within Euclidean distance `t` of a region pixel?
    fn points_into(&self, mask: &[bool], t: u32) -> bool {
        let (w, h) = (self.map.width as i64, self.map.height as i64);
        let (x0, y0) = ((self.argmax as i64) % w, (self.argmax as i64) / w);
        let t = t as i64;
        for dy in -t..=t {
            for dx in -t..=t {
                if dx * dx + dy * dy > t * t {
                    continue;
                }
                let (x, y) = (x0 + dx, y0 + dy);
                if x >= 0 && y >= 0 && x < w && y < h && mask[(y * w + x) as usize] {
                    return true;
                }
            }
        }
        false
    }
}

/// Stats of every region of `masks` (resized with nearest neighbour to the map size when they
/// differ). Regions empty in this image are left out; a massless map gives an empty table.
pub fn region_table(
    map: &Map2,
    masks: &RegionMasks,
    tolerance: u32,
) -> BTreeMap<String, RegionStats> {
    let mut out = BTreeMap::new();
    let Some(stats) = MapStats::new(map) else {
        return out;
    };
    let resized;
    let masks = if (masks.width, masks.height) == (map.width, map.height) {
        masks
    } else {
        resized = masks.resize_nearest(map.width, map.height);
        &resized
    };
    for name in &masks.names {
        if let Some(mask) = masks.mask(name) {
            if let Some(s) = stats.region(&mask, tolerance) {
                out.insert(name.clone(), s);
            }
        }
    }
    out
}

/// Running means of region stats (one count per region, since regions can be absent in some
/// images).
#[derive(Debug, Clone, Default)]
pub struct RegionMean {
    sums: BTreeMap<String, (RegionStats, u64)>,
}

impl RegionMean {
    pub fn update(&mut self, table: &BTreeMap<String, RegionStats>) {
        for (name, s) in table {
            let (acc, n) = self.sums.entry(name.clone()).or_default();
            acc.mass += s.mass;
            acc.lift += s.lift;
            acc.pointing += s.pointing;
            acc.rank += s.rank;
            *n += 1;
        }
    }

    pub fn compute(&self) -> BTreeMap<String, RegionStats> {
        self.sums
            .iter()
            .map(|(name, (s, n))| {
                let k = *n as f64;
                (
                    name.clone(),
                    RegionStats {
                        mass: s.mass / k,
                        lift: s.lift / k,
                        pointing: s.pointing / k,
                        rank: s.rank / k,
                    },
                )
            })
            .collect()
    }

    pub fn reset(&mut self) {
        self.sums.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(w: u32, h: u32, data: Vec<f32>) -> Map2 {
        Map2 {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn region_metrics_match_hand_computed_values() {
        // 4x1 map [4, 3, 2, 1] (total 10); region = pixels 1 and 2 (area 2 of 4).
        let m = map(4, 1, vec![4.0, 3.0, 2.0, 1.0]);
        let s = MapStats::new(&m).unwrap();
        let r = s.region(&[false, true, true, false], 0).unwrap();
        assert!((r.mass - 0.5).abs() < 1e-12);
        assert!((r.lift - 1.0).abs() < 1e-12);
        assert_eq!(r.pointing, 0.0); // argmax is pixel 0
                                     // top-2 pixels are {0, 1}: one of them in R.
        assert!((r.rank - 0.5).abs() < 1e-12);
        // With tolerance 1 the argmax is next to pixel 1: a hit.
        assert_eq!(
            s.region(&[false, true, true, false], 1).unwrap().pointing,
            1.0
        );
        let f = s.region(&[true, false, false, false], 0).unwrap();
        assert!((f.mass - 0.4).abs() < 1e-12 && (f.lift - 1.6).abs() < 1e-12);
        assert_eq!((f.pointing, f.rank), (1.0, 1.0));
    }

    #[test]
    fn empty_regions_and_massless_maps_give_no_stats() {
        let m = map(2, 1, vec![0.0, 0.0]);
        assert!(MapStats::new(&m).is_none());
        let m = map(2, 1, vec![1.0, 0.0]);
        assert!(MapStats::new(&m)
            .unwrap()
            .region(&[false, false], 2)
            .is_none());
        let masks = RegionMasks {
            width: 1,
            height: 1,
            names: vec!["flag".into(), "face".into()],
            bits: vec![1],
        };
        // Mask resized 1x1 -> 2x1: flag covers both pixels, face neither.
        let t = region_table(&m, &masks, 0);
        assert_eq!(t.keys().collect::<Vec<_>>(), vec!["flag"]);
        assert!((t["flag"].mass - 1.0).abs() < 1e-12);
    }

    #[test]
    fn region_mean_counts_each_region_separately() {
        let mut acc = RegionMean::default();
        let a = RegionStats {
            mass: 1.0,
            lift: 2.0,
            pointing: 1.0,
            rank: 1.0,
        };
        let b = RegionStats::default();
        acc.update(&[("flag".to_string(), a), ("face".to_string(), a)].into());
        acc.update(&[("flag".to_string(), b)].into());
        let m = acc.compute();
        assert_eq!(m["flag"].mass, 0.5);
        assert_eq!(m["face"].mass, 1.0);
    }

    #[test]
    fn pixel_order_is_decreasing_value_then_index_with_nan_and_negatives_as_zero() {
        // Many ties, NaN, infinities, negative values and -0.0 against a comparison sort.
        let vals = [
            0.5,
            f32::NAN,
            -1.0,
            2.0,
            0.5,
            -0.0,
            f32::INFINITY,
            0.0,
            2.0,
            1e-30,
            f32::MIN_POSITIVE,
            0.5,
        ];
        let data: Vec<f32> = (0..300)
            .map(|i| vals[(i * 7 + i / 13) % vals.len()])
            .collect();
        let m = map(20, 15, data.clone());
        let s = MapStats::new(&m).unwrap();
        let clean = |v: f32| if v.is_finite() && v > 0.0 { v } else { 0.0 };
        let mut want: Vec<u32> = (0..data.len() as u32).collect();
        want.sort_by(|&a, &b| {
            clean(data[b as usize])
                .total_cmp(&clean(data[a as usize]))
                .then(a.cmp(&b))
        });
        assert_eq!(s.order, want);
        assert_eq!(s.argmax, want[0] as usize);
    }
}
