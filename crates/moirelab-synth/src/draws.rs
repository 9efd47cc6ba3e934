//! Every parameter of one sample, drawn before anything is rendered: the card, the display,
//! the scene and the camera from their own RNG streams, plus the training-only thinning of a
//! recapture's display effects (`cue-dropout`) and the out-of-focus draw (`defocus-prob`).

use crate::camera::CameraParams;
use crate::card::{CardSpec, Design, FlagFamily, Hologram};
use crate::config::{Artifact, GenConfig, Holdout, DEFOCUS};
use crate::display::ScreenParams;
use crate::pipeline::SampleSpec;
use crate::sampling::{log_uniform, Hold};
use crate::scene::SceneParams;
use moirelab_core::jpeg::Chroma;
use moirelab_core::rng::Rng;

/// RNG stream ids per sample: `Rng::derive(seed, &[index, STREAM])`. Each stage has its own
/// stream and every stage draws all its parameters whatever the label, so the label never
/// shifts another stage's random numbers.
const STREAM_CARD: u64 = 1;
const STREAM_SCREEN: u64 = 2;
const STREAM_SCENE: u64 = 3;
const STREAM_CAMERA: u64 = 4;
pub(crate) const STREAM_NOISE: u64 = 5;
const STREAM_PRINT: u64 = 6;
const STREAM_HOLOGRAM: u64 = 7;
const STREAM_CUES: u64 = 8;
const STREAM_DEFOCUS: u64 = 9;
const STREAM_CHROMA: u64 = 10;
const STREAM_DESIGN: u64 = 11;
const STREAM_DESK: u64 = 12;
/// The photo's side when the config draws it from `sizes`.
pub(crate) const STREAM_SIZE: u64 = 13;

/// Every parameter of one sample.
pub(crate) struct Draws {
    pub(crate) card: CardSpec,
    pub(crate) screen: ScreenParams,
    pub(crate) scene: SceneParams,
    pub(crate) camera: CameraParams,
    /// Texels per output pixel of a printed card.
    pub(crate) print_density: f64,
    /// The display effects this sample shows: the config's `artifacts`, less those that
    /// `cue-dropout` switched off.
    pub(crate) effects: Vec<Artifact>,
}

impl Draws {
    pub(crate) fn has(&self, a: Artifact) -> bool {
        self.effects.contains(&a)
    }
}

/// The display effects of one sample. A train or val recapture loses each of the display's
/// own effects in `artifacts` (grid, bands, tone, veil, off-axis view; not the attacker's file:
/// viewer blur and double JPEG) with probability `cue-dropout`; when that would leave none, one
/// of them (drawn uniformly) stays. The draws come from their own stream and only when the knob
/// is on, so at 0 nothing else changes.
fn effects(cfg: &GenConfig, spec: &SampleSpec) -> Vec<Artifact> {
    let all = &cfg.knobs.artifacts;
    let p = cfg.knobs.cue_dropout;
    let display: Vec<usize> = (0..all.len()).filter(|&i| all[i].is_display()).collect();
    if p == 0.0 || !spec.screen || spec.test || display.is_empty() {
        return all.clone();
    }
    let rng = &mut Rng::derive(cfg.seed, &[spec.index as u64, STREAM_CUES]);
    let mut keep = vec![true; all.len()];
    for &i in &display {
        keep[i] = !rng.bernoulli(p);
    }
    if display.iter().all(|&i| !keep[i]) {
        keep[display[rng.below(display.len() as u64) as usize]] = true;
    }
    all.iter()
        .zip(keep)
        .filter_map(|(&a, k)| k.then_some(a))
        .collect()
}

/// An out-of-focus photo (either class, every split) with probability `defocus-prob`: a
/// Gaussian defocus drawn in output pixels is added in quadrature to the lens blur, in sensor
/// pixels, so the image and the display grid's transfer both see it. Its own stream, drawn only
/// when the knob is on: at 0 nothing else changes.
fn defocus(cfg: &GenConfig, spec: &SampleSpec, mut cam: CameraParams) -> CameraParams {
    let p = cfg.knobs.defocus_prob;
    if p == 0.0 {
        return cam;
    }
    let rng = &mut Rng::derive(cfg.seed, &[spec.index as u64, STREAM_DEFOCUS]);
    if rng.bernoulli(p) {
        let sigma = rng.range(DEFOCUS.0, DEFOCUS.1);
        cam.blur = cam.blur.hypot(sigma * cam.scale);
        cam.defocus = Some(sigma);
    }
    cam
}

/// The chroma sampling of the camera JPEG and, apart, of the upload JPEG: 4:2:0 with
/// probability `jpeg-420-prob` each, both classes alike. Its own stream, drawn only when the
/// knob is on: at 0 every JPEG stays 4:4:4 and nothing else changes.
fn chroma(cfg: &GenConfig, spec: &SampleSpec, mut cam: CameraParams) -> CameraParams {
    let p = cfg.knobs.jpeg_420_prob;
    if p == 0.0 {
        return cam;
    }
    let rng = &mut Rng::derive(cfg.seed, &[spec.index as u64, STREAM_CHROMA]);
    let mut one = || {
        if rng.bernoulli(p) {
            Chroma::Half
        } else {
            Chroma::Full
        }
    };
    cam.chroma = one();
    cam.upload_chroma = one();
    cam
}

pub(crate) fn draw(cfg: &GenConfig, spec: &SampleSpec, family: FlagFamily) -> Draws {
    let (seed, i) = (cfg.seed, spec.index as u64);
    let hold = match (cfg.knobs.holdout, spec.test) {
        (Holdout::None, _) => Hold::Free,
        (_, true) => Hold::Only,
        (_, false) => Hold::Exclude,
    };
    let mut card = CardSpec::draw(
        &mut Rng::derive(seed, &[i, STREAM_CARD]),
        family,
        spec.hair,
        cfg.knobs.aliased_guilloche,
    );
    card.hologram = Hologram::draw(
        &mut Rng::derive(seed, &[i, STREAM_HOLOGRAM]),
        cfg.knobs.hologram_prob,
    );
    // Designs and desks from their own streams, drawn only when the knob is on: at 0 every
    // byte is what it was before the knob existed.
    let variety = cfg.knobs.design_variety;
    if variety > 0.0 {
        let design = Design::draw(&mut Rng::derive(seed, &[i, STREAM_DESIGN]), variety);
        card = card.with_design(design);
    }
    let mut scene = SceneParams::draw(&mut Rng::derive(seed, &[i, STREAM_SCENE]), cfg);
    if variety > 0.0 {
        scene = scene.vary_desk(&mut Rng::derive(seed, &[i, STREAM_DESK]), variety);
    }
    Draws {
        card,
        screen: ScreenParams::draw(&mut Rng::derive(seed, &[i, STREAM_SCREEN]), cfg, hold),
        scene,
        camera: chroma(
            cfg,
            spec,
            defocus(
                cfg,
                spec,
                CameraParams::draw(&mut Rng::derive(seed, &[i, STREAM_CAMERA]), cfg, hold),
            ),
        ),
        print_density: log_uniform(&mut Rng::derive(seed, &[i, STREAM_PRINT]), 1.0, 3.0),
        effects: effects(cfg, spec),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::card::Hair;

    /// A train-split sample (flag A, dark hair), for the generator's unit tests.
    pub(crate) fn spec(index: usize, screen: bool) -> SampleSpec {
        SampleSpec {
            index,
            screen,
            family: FlagFamily::A,
            hair: Hair::Dark,
            test: false,
        }
    }

    #[test]
    fn cue_dropout_keeps_one_display_effect_and_the_attackers_file() {
        let mut cfg = GenConfig::preset("tiny").unwrap();
        cfg.knobs.cue_dropout = 1.0;
        let mut counts = std::collections::BTreeMap::new();
        for i in 0..300 {
            let e = effects(&cfg, &spec(i, true));
            let display: Vec<_> = e.iter().filter(|a| a.is_display()).collect();
            assert_eq!(display.len(), 1, "sample {i}: {e:?}");
            assert!(e.contains(&Artifact::Blur) && e.contains(&Artifact::DoubleJpeg));
            *counts.entry(display[0].name()).or_insert(0) += 1;
        }
        // The survivor is drawn uniformly from moire, bands and tone.
        assert_eq!(counts.len(), 3, "{counts:?}");
        assert!(
            counts.values().all(|&n| (70..=130).contains(&n)),
            "{counts:?}"
        );
        cfg.knobs.cue_dropout = 0.5;
        let dropped = (0..600)
            .filter(|&i| !effects(&cfg, &spec(i, true)).contains(&Artifact::Moire))
            .count();
        // P(the grid is off) = 0.5 · (1 − P(it is the survivor of an all-off draw)).
        let want = 0.5 - 0.125 / 3.0;
        assert!(
            (dropped as f64 / 600.0 - want).abs() < 0.06,
            "{dropped} of 600"
        );
    }
}
