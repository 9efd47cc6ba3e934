//! The composition of one sample: the card (stage A, `card/`), the display it is shown on
//! for recaptures (stage B, `display.rs`), the scene (stage C, `scene.rs`) and the camera
//! (stage D, `camera.rs`), plus the region masks and the manifest parameters.
//!
//! Resolutions: the card texture has one texel per display pixel for recaptures (its width is
//! the card's width in output pixels divided by the display pitch) and a print density of
//! 1–3 texels per output pixel for direct captures. The camera works on a sensor grid of
//! `sensor_scale · size` pixels and the image is resized to `size` at the end, as a phone
//! photo is. Masks are computed on the output grid.
//!
//! # Shapes
//! Sensor images are `[ws][ws][3]` linear light; the raw mosaic `[ws][ws]`; outputs
//! `[size][size][3]` sRGB u8; masks `[size][size]` u16 bit fields.

use crate::camera::{self, CameraParams, Demosaic};
use crate::card::{self, Card, CardSpec, FlagFamily, Hair, CARD_ASPECT};
use crate::config::{Artifact, GenConfig, Holdout};
use crate::display::{apply_tone, Grid, ScreenParams, Transfer};
use crate::geom::Homography;
use crate::jpeg;
use crate::raster::{Plane, Rgb};
use crate::sampling::{log_uniform, Hold};
use crate::scene::{self, SceneParams};
use crate::{region_bit, SynthError};
use moirelab_core::rng::Rng;

/// RNG stream ids per sample: `Rng::derive(seed, &[index, STREAM])`. Each stage has its own
/// stream and every stage draws all its parameters whatever the label, so the label never
/// shifts another stage's random numbers.
const STREAM_CARD: u64 = 1;
const STREAM_SCREEN: u64 = 2;
const STREAM_SCENE: u64 = 3;
const STREAM_CAMERA: u64 = 4;
const STREAM_NOISE: u64 = 5;
const STREAM_PRINT: u64 = 6;

/// Largest card texture, in output widths (bounds the card renderer's cost at fine pitches).
const MAX_TEXTURE: f64 = 3.5;
/// Relative modulation (linear light) above which the display grid counts as visible in the
/// output: about one 8-bit step at mid-grey.
const GRID_VISIBLE: f32 = 0.012;
/// Band depth above which a row counts as banded.
const BAND_VISIBLE: f64 = 0.02;
/// Glare (linear light) above which a pixel counts as glared.
const GLARE_VISIBLE: f64 = 0.01;

/// What the data-set plan decided for one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleSpec {
    pub index: usize,
    pub screen: bool,
    pub family: FlagFamily,
    pub hair: Hair,
    /// In the test split (a held-out factor is forced there and excluded elsewhere).
    pub test: bool,
}

/// One rendered sample at output resolution.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// `[size][size][3]` sRGB bytes.
    pub rgb8: Vec<u8>,
    /// `[size][size]` region bits.
    pub bits: Vec<u16>,
    /// Boxes in output pixels `[x0, y0, x1, y1]` (exclusive ends).
    pub boxes: Vec<(String, [u32; 4])>,
    pub params: serde_json::Value,
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn render_err(index: usize, msg: &str) -> SynthError {
    SynthError::Render {
        index,
        msg: msg.into(),
    }
}

/// Every parameter of one sample.
struct Draws {
    card: CardSpec,
    screen: ScreenParams,
    scene: SceneParams,
    camera: CameraParams,
    /// Texels per output pixel of a printed card.
    print_density: f64,
}

fn draw(cfg: &GenConfig, spec: &SampleSpec, family: FlagFamily) -> Draws {
    let (seed, i) = (cfg.seed, spec.index as u64);
    let hold = match (cfg.knobs.holdout, spec.test) {
        (Holdout::None, _) => Hold::Free,
        (_, true) => Hold::Only,
        (_, false) => Hold::Exclude,
    };
    Draws {
        card: CardSpec::draw(
            &mut Rng::derive(seed, &[i, STREAM_CARD]),
            family,
            spec.hair,
            cfg.knobs.aliased_guilloche,
        ),
        screen: ScreenParams::draw(&mut Rng::derive(seed, &[i, STREAM_SCREEN]), cfg, hold),
        scene: SceneParams::draw(&mut Rng::derive(seed, &[i, STREAM_SCENE]), cfg),
        camera: CameraParams::draw(&mut Rng::derive(seed, &[i, STREAM_CAMERA]), cfg, hold),
        print_density: log_uniform(&mut Rng::derive(seed, &[i, STREAM_PRINT]), 1.0, 3.0),
    }
}

/// What the camera sees of the display, on the sensor grid: the sub-pixel grid's transfer
/// and the rolling-shutter band factor of each readout line.
struct DisplayOnSensor {
    grid: Option<Grid>,
    /// One factor per sensor row (or column, when the readout runs along columns); empty
    /// for flicker-free panels.
    bands: Vec<f64>,
}

fn display_on_sensor(
    cfg: &GenConfig,
    spec: &SampleSpec,
    d: &Draws,
    inv_sens: &Homography,
    centre: [f64; 2],
    ws: usize,
) -> DisplayOnSensor {
    let (sp, cam) = (&d.screen, &d.camera);
    let g = cfg.knobs.artifact_gain;
    let grid = (spec.screen && cfg.has(Artifact::Moire)).then(|| {
        let t = Transfer {
            jacobian: inv_sens.jacobian(centre[0], centre[1]),
            blur_sigma: cam.blur,
            motion: [
                cam.motion_len * cam.motion_angle.cos(),
                cam.motion_len * cam.motion_angle.sin(),
            ],
            aperture: cam.aperture,
        };
        Grid::new(sp.layout, sp.fill, &t, g)
    });
    let bands = match sp.pwm(ws, cam.shutter) {
        Some(pwm) if spec.screen && cfg.has(Artifact::Bands) => (0..ws)
            .map(|r| 1.0 + g * (pwm.row_gain(r as f64 + 0.5) - 1.0))
            .collect(),
        _ => Vec::new(),
    };
    DisplayOnSensor { grid, bands }
}

/// The card texture and what the display does to it (recaptures): the attacker's JPEG, the
/// viewer's resampling blur and the panel's tone, where the object emits.
fn object(cfg: &GenConfig, spec: &SampleSpec, d: &Draws, wd: usize) -> (scene::Object, Card) {
    let sp = &d.screen;
    let mut card = card::render(&d.card, wd, d.scene.flag_frac);
    if spec.screen && cfg.has(Artifact::DoubleJpeg) {
        if let Some(q1) = sp.q1 {
            let bytes = jpeg::round_trip(card.rgb.w, card.rgb.h, &card.rgb.to_srgb8(), q1);
            card.rgb = Rgb::from_srgb8(card.rgb.w, card.rgb.h, &bytes);
        }
    }
    let rgb = std::mem::replace(&mut card.rgb, Rgb::filled(0, 0, [0.0; 3]));
    let alpha = std::mem::replace(&mut card.alpha, Plane::new(0, 0));
    let mut obj = scene::build_object(rgb, alpha, spec.screen, sp, cfg);
    if spec.screen && (cfg.has(Artifact::Blur) || cfg.has(Artifact::Tone)) {
        let mut shown = obj.rgb.clone();
        if cfg.has(Artifact::Blur) {
            shown.gaussian_blur(sp.viewer_blur as f32);
        }
        if cfg.has(Artifact::Tone) {
            apply_tone(&mut shown, sp);
        }
        let emissive = if obj.emissive_is_alpha {
            &obj.alpha.px
        } else {
            &obj.emissive.px
        };
        for (&e, (s, o)) in emissive
            .iter()
            .zip(shown.px.chunks_exact(3).zip(obj.rgb.px.chunks_exact_mut(3)))
        {
            for k in 0..3 {
                o[k] += (s[k] - o[k]) * e;
            }
        }
    }
    (obj, card)
}

/// Render one sample. `twin` swaps the flag family (counterfactual: everything else equal).
/// Artifact masks are computed when `masks` is true.
pub fn render(
    cfg: &GenConfig,
    spec: &SampleSpec,
    twin: bool,
    masks: bool,
) -> Result<Rendered, SynthError> {
    let size = cfg.size as usize;
    let family = if twin {
        spec.family.other()
    } else {
        spec.family
    };
    let d = draw(cfg, spec, family);
    let (sp, sc, cam) = (&d.screen, &d.scene, &d.camera);

    // Stage C placement (output pixels); it needs only the card's aspect.
    let corners = scene::place(sc, cfg, 1000.0, 1000.0 / CARD_ASPECT);
    let edge = |a: [f64; 2], b: [f64; 2]| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
    let card_out_w = 0.5 * (edge(corners[0], corners[1]) + edge(corners[3], corners[2]));
    // Texels per output pixel: one per display pixel on a screen, the print density on paper.
    let density = if spec.screen {
        1.0 / sp.pitch
    } else {
        d.print_density
    };
    let wd =
        ((card_out_w * density).round() as usize).clamp(48, (MAX_TEXTURE * size as f64) as usize);

    // Stages A and B: the card, shown on the display for recaptures.
    let (obj, card) = object(cfg, spec, &d, wd);
    let (cw, ch) = card.labels.size();
    let (wc, hc) = (cw as f64, ch as f64);
    let rect = [[0.0, 0.0], [wc, 0.0], [wc, hc], [0.0, hc]];
    let h_card = Homography::from_points(&rect, &corners)
        .ok_or_else(|| render_err(spec.index, "degenerate card placement"))?;
    let h_tex = h_card.compose(&Homography::scale_translate(
        1.0,
        1.0,
        -obj.margin[0],
        -obj.margin[1],
    ));
    let ws = ((cam.scale * size as f64).round() as usize).max(size);
    let k = ws as f64 / size as f64;
    let to_sensor = Homography::scale_translate(k, k, 0.0, 0.0);
    let h_sens = to_sensor.compose(&h_tex);
    let inv_sens = h_sens
        .inverse()
        .ok_or_else(|| render_err(spec.index, "singular homography"))?;
    let inv_card = h_card
        .inverse()
        .ok_or_else(|| render_err(spec.index, "singular homography"))?;

    // Stage C on the sensor grid: the desk, the warped object, then the display's light.
    let texels_per_px = wd as f64 / (card_out_w * k);
    let n = (texels_per_px / 1.25).ceil().clamp(1.0, 3.0) as usize;
    let (mut img, emissive) = scene::warp(&obj, &h_sens, &inv_sens, scene::background(sc, ws), n);
    let tex_centre = [obj.rgb.w as f64 * 0.5, obj.rgb.h as f64 * 0.5];
    let dos = display_on_sensor(
        cfg,
        spec,
        &d,
        &inv_sens,
        h_sens.apply(tex_centre[0], tex_centre[1]),
        ws,
    );
    let band_at = |x: usize, y: usize| {
        if dos.bands.is_empty() {
            1.0
        } else if sp.readout_rows {
            dos.bands[y]
        } else {
            dos.bands[x]
        }
    };
    if !dos.bands.is_empty() {
        for y in 0..ws {
            for x in 0..ws {
                let e = emissive.px[y * ws + x];
                if e > 0.0 {
                    let f = 1.0 + e * (band_at(x, y) as f32 - 1.0);
                    img.px[(y * ws + x) * 3..(y * ws + x) * 3 + 3]
                        .iter_mut()
                        .for_each(|v| *v *= f);
                }
            }
        }
    }
    if spec.screen && cfg.has(Artifact::Veil) {
        for (i, v) in img.px.iter_mut().enumerate() {
            *v += (sp.veil * emissive.px[i / 3] as f64) as f32;
        }
    }
    let card_bb_sensor = scene::bbox(&to_sensor.compose(&h_card), &[0.0, 0.0, wc, hc]);
    let glare = scene::glare_field(sc, card_bb_sensor, ws);
    let warm = [1.0, 0.98, 0.94];
    for (p, &add) in img.px.chunks_exact_mut(3).zip(&glare) {
        if add > 0.0 {
            for k in 0..3 {
                p[k] += (add * warm[k]) as f32;
            }
        }
    }

    // Stage D: lens, sensor, processing.
    let ev = 2f64.powf(cam.exposure_ev);
    scene::light(&mut img, sc, cam.wb.map(|w| w * ev));
    img.gaussian_blur(cam.blur as f32);
    img.motion_blur((cam.motion_len) as f32, cam.motion_angle as f32);
    let mut raw = Plane::new(ws, ws);
    // The grid's contribution alone (mask footprint), when masks are asked for.
    let mut grid_part = if masks && dos.grid.is_some() {
        Plane::new(ws, ws)
    } else {
        Plane::new(0, 0)
    };
    for y in 0..ws {
        for x in 0..ws {
            let j = y * ws + x;
            let c = camera::cfa(x, y, cam.phase);
            let v = img.px[j * 3 + c];
            let e = emissive.px[j];
            raw.px[j] = match &dos.grid {
                Some(grid) if e > 0.0 => {
                    let u = inv_sens.apply(x as f64 + 0.5, y as f64 + 0.5);
                    let m = (e as f64 * (grid.at(c, u) - 1.0)) as f32;
                    if !grid_part.px.is_empty() {
                        grid_part.px[j] = v * m;
                    }
                    v * (1.0 + m)
                }
                _ => v,
            };
        }
    }
    camera::add_noise(
        &mut raw,
        cam.noise_a,
        cam.noise_b,
        &mut Rng::derive(cfg.seed, &[spec.index as u64, STREAM_NOISE]),
    );
    let rgb = camera::demosaic(&raw, cam.phase, cam.demosaic);
    let mut shown = camera::render_srgb(rgb, cam.contrast, cam.saturation);
    camera::sharpen(&mut shown, cam.sharpen.0, cam.sharpen.1);
    let jpeg_bytes = jpeg::round_trip(ws, ws, &camera::to_bytes(&shown), cam.quality);
    let out = camera::resize_bytes(ws, ws, &jpeg_bytes, size, cam.resize);
    let mut rgb8 = camera::to_bytes(&out);
    if let Some(q) = cam.upload_q {
        rgb8 = jpeg::round_trip(size, size, &rgb8, q);
    }

    // Region labels: nearest-neighbour through the card's homography.
    let mut bits = vec![0u16; size * size];
    for y in 0..size {
        for x in 0..size {
            let [u, v] = inv_card.apply(x as f64 + 0.5, y as f64 + 0.5);
            if u >= 0.0 && v >= 0.0 && u < wc && v < hc {
                let (ui, vi) = ((u as usize).min(cw - 1), (v as usize).min(ch - 1));
                bits[y * size + x] = card.labels.at(ui, vi);
            }
        }
    }
    let mut areas = serde_json::Map::new();
    if masks {
        let mut mark = |name: &str, on: &dyn Fn(usize) -> bool| {
            let b = region_bit(name);
            let mut area = 0usize;
            for (i, bit) in bits.iter_mut().enumerate() {
                if on(i) {
                    *bit |= b;
                    area += 1;
                }
            }
            areas.insert(format!("{name}-area"), serde_json::json!(area));
        };
        if !grid_part.px.is_empty() {
            let vis = grid_visibility(&grid_part, &img, cam, size);
            mark("moire", &|i| vis[i]);
        }
        if !dos.bands.is_empty() {
            let em = camera::resize_plane(&emissive, size, camera::Resize::Area);
            mark("bands", &|i| {
                let (x, y) = (i % size, i / size);
                let (sx, sy) = (
                    (((x as f64 + 0.5) * k) as usize).min(ws - 1),
                    (((y as f64 + 0.5) * k) as usize).min(ws - 1),
                );
                em.px[i] > 0.5 && (band_at(sx, sy) - 1.0).abs() > BAND_VISIBLE
            });
        }
        if sc.glare.is_some() {
            let field = scene::glare_field(sc, scene::bbox(&h_card, &[0.0, 0.0, wc, hc]), size);
            mark("glare", &|i| field[i] > GLARE_VISIBLE);
        }
    }

    let sz = size as f64;
    let boxes = card
        .boxes
        .iter()
        .map(|(name, b)| {
            let bb = scene::bbox(&h_card, b);
            let c =
                |v: f64, up: bool| (if up { v.ceil() } else { v.floor() }).clamp(0.0, sz) as u32;
            (
                name.to_string(),
                [
                    c(bb[0], false),
                    c(bb[1], false),
                    c(bb[2], true),
                    c(bb[3], true),
                ],
            )
        })
        .collect();

    let mut params = serde_json::json!({
        "card": card.params,
        "scene": {
            "corners": corners.map(|p| [round3(p[0]), round3(p[1])]),
            "scale": round3(sc.scale),
            "rotation-deg": round3(sc.rotation.to_degrees()),
            "light-gradient": round3(sc.light_g),
            "vignette": round3(sc.vignette),
            "shadow": sc.shadow.is_some(),
            "glare-gain": sc.glare.map(|g| round3(g.gain)),
            "texture-px": wd,
        },
        "camera": {
            "sensor-scale": round3(k),
            "lens-sigma-px": round3(cam.blur),
            "motion-px": round3(cam.motion_len),
            "noise-a": cam.noise_a,
            "exposure-ev": round3(cam.exposure_ev),
            "shutter-s": cam.shutter,
            "demosaic": cam.demosaic.name(),
            "sharpen": round3(cam.sharpen.1 as f64),
            "jpeg-q": cam.quality,
            "resize": cam.resize.name(),
            "upload-jpeg-q": cam.upload_q,
        },
    });
    if spec.screen {
        params["screen"] = serde_json::json!({
            "layout": sp.layout.name(),
            "pitch-px": round3(card_out_w / wd as f64),
            "fill": sp.fill.map(round3),
            "grid-amplitude": dos.grid.as_ref().map(|g| round3(g.peak_amplitude())),
            "pwm-hz": dos.bands.first().and(sp.pwm.map(|p| round3(p.0))),
            "pwm-duty": dos.bands.first().and(sp.pwm.map(|p| round3(p.1))),
            "jpeg-q1": sp.q1.filter(|_| cfg.has(Artifact::DoubleJpeg)),
            "gamma": cfg.has(Artifact::Tone).then_some(round3(sp.gamma)),
            "black-level": cfg.has(Artifact::Tone).then_some(round3(sp.black)),
            "blue-red": cfg.has(Artifact::Tone).then_some(round3(sp.blue_red)),
        });
    }
    if !areas.is_empty() {
        params["mask-areas"] = serde_json::Value::Object(areas);
    }
    Ok(Rendered {
        rgb8,
        bits,
        boxes,
        params,
    })
}

/// Where the display grid changes the output image visibly: the grid's part of the raw
/// mosaic, demosaiced and resized like the image (both linear), taken relative to the
/// image's brightness, smoothed over about a beat and thresholded.
fn grid_visibility(part: &Plane, lit: &Rgb, cam: &CameraParams, size: usize) -> Vec<bool> {
    let d = camera::demosaic(part, cam.phase, Demosaic::Bilinear);
    let d = camera::resize(&d, size, cam.resize);
    let base = camera::resize(lit, size, camera::Resize::Area);
    let mut rel = Plane::new(size, size);
    for (i, v) in rel.px.iter_mut().enumerate() {
        let j = i * 3;
        let m = (d.px[j].abs() + d.px[j + 1].abs() + d.px[j + 2].abs()) / 3.0;
        let l = (base.px[j] + base.px[j + 1] + base.px[j + 2]) / 3.0;
        *v = m / l.max(0.02);
    }
    rel.box_blur((size / 64).max(1));
    rel.px.iter().map(|&v| v > GRID_VISIBLE).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::display::Layout;

    fn spec(index: usize, screen: bool) -> SampleSpec {
        SampleSpec {
            index,
            screen,
            family: FlagFamily::A,
            hair: Hair::Dark,
            test: false,
        }
    }

    #[test]
    fn flag_pixels_under_the_flag_mask_have_flag_colours() {
        // After the warp, the pixels labelled "flag" must show the flag's saturated palette,
        // not the pastel card: mean chroma inside the mask far exceeds the card's.
        let cfg = GenConfig::preset("tiny").unwrap();
        let r = render(&cfg, &spec(3, false), false, false).unwrap();
        let fb = region_bit("flag");
        let cb = region_bit("card");
        let chroma = |i: usize| {
            let p = &r.rgb8[i * 3..i * 3 + 3];
            (*p.iter().max().unwrap() - *p.iter().min().unwrap()) as f64
        };
        let (mut fsum, mut fn_, mut csum, mut cn) = (0.0, 0, 0.0, 0);
        for (i, &b) in r.bits.iter().enumerate() {
            if b & fb != 0 {
                fsum += chroma(i);
                fn_ += 1;
            } else if b & cb != 0 && b == cb {
                csum += chroma(i);
                cn += 1;
            }
        }
        assert!(fn_ > 30, "flag area {fn_}");
        assert!(fsum / fn_ as f64 > 2.0 * csum / cn as f64 + 20.0);
    }

    #[test]
    fn moire_mask_is_empty_with_zero_gain_and_present_with_a_resolved_grid() {
        // 2.4–3.75 sensor pixels per display pixel: the camera resolves the sub-pixel grid
        // and the resize folds it into beats on most recaptures.
        let mut cfg = GenConfig::preset("tiny").unwrap();
        cfg.knobs.pitch_min = 1.2;
        cfg.knobs.pitch_max = 1.5;
        cfg.knobs.sensor_scale_min = 2.0;
        cfg.knobs.sensor_scale_max = 2.5;
        let mb = region_bit("moire");
        let area = |r: &Rendered| r.bits.iter().filter(|&&b| b & mb != 0).count();
        let visible = (0..8)
            .filter(|&i| area(&render(&cfg, &spec(i, true), false, true).unwrap()) > 400)
            .count();
        assert!(visible >= 4, "{visible} of 8 recaptures show the grid");
        cfg.knobs.artifact_gain = 0.0;
        for i in 0..8 {
            assert_eq!(area(&render(&cfg, &spec(i, true), false, true).unwrap()), 0);
        }
    }

    #[test]
    fn held_out_layout_appears_only_in_test() {
        let mut cfg = GenConfig::preset("tiny").unwrap();
        cfg.knobs.holdout = Holdout::Layout(Layout::Pentile);
        for i in 0..40 {
            let train = render(&cfg, &spec(i, true), false, false).unwrap();
            assert_ne!(train.params["screen"]["layout"], "pentile", "sample {i}");
            let test = render(
                &cfg,
                &SampleSpec {
                    test: true,
                    ..spec(i, true)
                },
                false,
                false,
            )
            .unwrap();
            assert_eq!(test.params["screen"]["layout"], "pentile", "sample {i}");
        }
    }
}
