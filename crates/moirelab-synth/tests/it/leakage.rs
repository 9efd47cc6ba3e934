//! docs/SYNTH.md leakage checklist: with the display effects off nothing but the (balanced) flag and
//! hair attributes may differ between classes, so a classifier on global image statistics and
//! on background-only pixels must be at chance; with artifacts on it must not be.

use crate::tiny;
use moirelab_synth::{render_sample, Artifact, GenConfig, Sample};

/// Global features: per-channel mean and std, median |Laplacian| of luma and chroma over the
/// card, mean |Laplacian| (high-frequency energy), JPEG 8×8-grid energy (mean |step| across
/// block boundaries minus inside blocks), mean/std of the background-only pixels. The second
/// vector holds the two high-frequency medians alone.
fn features(s: &Sample) -> (Vec<f64>, Vec<f64>) {
    let img = &s.image;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let luma = |x: usize, y: usize| {
        let p = img.get_pixel(x as u32, y as u32).0;
        0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64
    };
    let mut glob = Vec::new();
    for c in 0..3 {
        let v: Vec<f64> = img.pixels().map(|p| p.0[c] as f64).collect();
        let m = v.iter().sum::<f64>() / v.len() as f64;
        glob.push(m);
        glob.push((v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt());
    }
    let mut hf = 0.0;
    let (mut edge, mut ne, mut inner, mut ni) = (0.0, 0, 0.0, 0);
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let l = 4.0 * luma(x, y)
                - luma(x - 1, y)
                - luma(x + 1, y)
                - luma(x, y - 1)
                - luma(x, y + 1);
            hf += l.abs();
            let d = (luma(x + 1, y) - luma(x, y)).abs();
            if (x + 1) % 8 == 0 {
                edge += d;
                ne += 1;
            } else {
                inner += d;
                ni += 1;
            }
        }
    }
    // Median |Laplacian| of luma and chroma over card pixels: text edges are sparse, so the
    // median measures the flat-area texture where moiré and bands live.
    let card = s.masks.mask("card").unwrap();
    let chroma = |x: usize, y: usize| {
        let p = img.get_pixel(x as u32, y as u32).0;
        p[0] as f64 - p[2] as f64
    };
    let (mut lum_lap, mut chr_lap) = (Vec::new(), Vec::new());
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            if card[y * w + x] {
                let l = 4.0 * luma(x, y)
                    - luma(x - 1, y)
                    - luma(x + 1, y)
                    - luma(x, y - 1)
                    - luma(x, y + 1);
                let c = 4.0 * chroma(x, y)
                    - chroma(x - 1, y)
                    - chroma(x + 1, y)
                    - chroma(x, y - 1)
                    - chroma(x, y + 1);
                lum_lap.push(l.abs());
                chr_lap.push(c.abs());
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let hf_feats = vec![median(&mut lum_lap), median(&mut chr_lap)];
    glob.extend(&hf_feats);
    glob.push(hf / ((w - 2) * (h - 2)) as f64);
    glob.push(edge / ne as f64 - inner / ni as f64);
    let bg: Vec<f64> = img
        .pixels()
        .zip(&card)
        .filter(|(_, &c)| !c)
        .map(|(p, _)| p.0.iter().map(|&v| v as f64).sum::<f64>() / 3.0)
        .collect();
    let m = bg.iter().sum::<f64>() / bg.len().max(1) as f64;
    glob.push(m);
    glob.push((bg.iter().map(|x| (x - m).powi(2)).sum::<f64>() / bg.len().max(1) as f64).sqrt());
    (glob, hf_feats)
}

/// Nearest-centroid classifier on standardised features: fit on the first half, accuracy on
/// the second half.
fn held_out_accuracy(x: &[Vec<f64>], y: &[bool]) -> f64 {
    let n = x.len() / 2;
    let d = x[0].len();
    let mean: Vec<f64> = (0..d)
        .map(|j| x[..n].iter().map(|r| r[j]).sum::<f64>() / n as f64)
        .collect();
    let sd: Vec<f64> = (0..d)
        .map(|j| {
            let v = x[..n].iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n as f64;
            v.sqrt().max(1e-9)
        })
        .collect();
    let z = |r: &Vec<f64>| -> Vec<f64> { (0..d).map(|j| (r[j] - mean[j]) / sd[j]).collect() };
    let centroid = |label: bool| -> Vec<f64> {
        let rows: Vec<Vec<f64>> = x[..n]
            .iter()
            .zip(&y[..n])
            .filter(|(_, &l)| l == label)
            .map(|(r, _)| z(r))
            .collect();
        (0..d)
            .map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / rows.len() as f64)
            .collect()
    };
    let (c1, c0) = (centroid(true), centroid(false));
    let dist = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| (p - q).powi(2)).sum::<f64>();
    let correct = x[n..]
        .iter()
        .zip(&y[n..])
        .filter(|(r, &l)| {
            let v = z(r);
            (dist(&v, &c1) < dist(&v, &c0)) == l
        })
        .count();
    correct as f64 / (x.len() - n) as f64
}

const N: usize = 120;
/// Held-out n = 60: under the null the accuracy is Binomial(60, ½)/60 with sd 0.065; a
/// band of ±0.19 (≈ 3 sd) gives a false alarm rate of about 0.3 % for an honest generator.
const CHANCE_BAND: f64 = 0.19;

fn dataset(cfg: &GenConfig) -> (Vec<Vec<f64>>, Vec<Vec<f64>>, Vec<bool>) {
    let samples: Vec<Sample> = (0..N).map(|i| render_sample(cfg, i).unwrap()).collect();
    let y = samples.iter().map(|s| s.record.label == "screen").collect();
    let (g, h): (Vec<_>, Vec<_>) = samples.iter().map(features).unzip();
    (g, h, y)
}

#[test]
fn with_artifacts_off_global_and_background_statistics_are_at_chance() {
    // With and without holograms: the foil is part of the card for both classes.
    for hologram_prob in [0.0, 0.6] {
        let mut cfg = tiny(N);
        cfg.knobs.artifacts = Vec::new();
        cfg.knobs.hologram_prob = hologram_prob;
        let (g, h, y) = dataset(&cfg);
        let acc = held_out_accuracy(&g, &y);
        assert!(
            (acc - 0.5).abs() <= CHANCE_BAND,
            "global-statistics classifier at {acc} (hologram-prob {hologram_prob})"
        );
        let acc = held_out_accuracy(&h, &y);
        assert!(
            (acc - 0.5).abs() <= CHANCE_BAND,
            "high-frequency classifier at {acc} (hologram-prob {hologram_prob})"
        );
    }
}

#[test]
fn with_strong_artifacts_high_frequency_statistics_beat_chance() {
    let mut cfg = tiny(N);
    // A coarse display pitch (the camera resolves the sub-pixel grid) with an exaggerated
    // grid: the screen's texture must show in the high-frequency statistics.
    cfg.knobs.artifacts = vec![Artifact::Moire, Artifact::Bands, Artifact::DoubleJpeg];
    cfg.knobs.artifact_gain = 3.0;
    cfg.knobs.pitch_min = 0.8;
    let (_, h, y) = dataset(&cfg);
    let acc = held_out_accuracy(&h, &y);
    assert!(
        acc > 0.5 + CHANCE_BAND,
        "high-frequency classifier only at {acc}"
    );
}
