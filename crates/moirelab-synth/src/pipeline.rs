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
use crate::card::{self, Card, FlagFamily, Hair, CARD_ASPECT};
use crate::config::{Artifact, GenConfig};
use crate::display::{apply_tone, Grid, Transfer};
use crate::draws::{draw, Draws, STREAM_NOISE};
use crate::geom::Homography;
use crate::raster::{Plane, Rgb};
use crate::scene;
use crate::viewing::apply_viewed_tone;
use crate::{region_bit, SynthError};
use moirelab_core::jpeg::{self, Chroma};
use moirelab_core::rng::Rng;

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
    /// The photo's side in pixels (the config's `size`, or the side drawn from its `sizes`).
    pub size: u32,
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
    let grid = (spec.screen && d.has(Artifact::Moire)).then(|| {
        let t = Transfer {
            jacobian: inv_sens.jacobian(centre[0], centre[1]),
            blur_sigma: cam.blur,
            motion: [
                cam.motion_len * cam.motion_angle.cos(),
                cam.motion_len * cam.motion_angle.sin(),
            ],
            aperture: cam.aperture,
        };
        Grid::new(sp.layout, sp.fill, sp.shape.as_ref(), &t, g)
    });
    let bands = match sp.pwm(ws, cam.shutter) {
        Some(pwm) if spec.screen && d.has(Artifact::Bands) => (0..ws)
            .map(|r| 1.0 + g * (pwm.row_gain(r as f64 + 0.5) - 1.0))
            .collect(),
        _ => Vec::new(),
    };
    DisplayOnSensor { grid, bands }
}

impl DisplayOnSensor {
    /// The band factor at sensor pixel (x, y): rows are read out one after another
    /// (`readout_rows`) or columns are.
    fn band_at(&self, x: usize, y: usize, readout_rows: bool) -> f64 {
        if self.bands.is_empty() {
            1.0
        } else if readout_rows {
            self.bands[y]
        } else {
            self.bands[x]
        }
    }
}

/// The card texture and what the display does to it (recaptures): the attacker's JPEG, the
/// viewer's resampling blur and the panel's tone, where the object emits.
fn object(cfg: &GenConfig, spec: &SampleSpec, d: &Draws, wd: usize) -> (scene::Object, Card) {
    let sp = &d.screen;
    let mut card = card::render(&d.card, wd, d.scene.flag_frac);
    if spec.screen && d.has(Artifact::DoubleJpeg) {
        if let Some(q1) = sp.q1 {
            let bytes = jpeg::round_trip(
                card.rgb.w,
                card.rgb.h,
                &card.rgb.to_srgb8(),
                q1,
                Chroma::Full,
            );
            card.rgb = Rgb::from_srgb8(card.rgb.w, card.rgb.h, &bytes);
        }
    }
    let rgb = std::mem::replace(&mut card.rgb, Rgb::filled(0, 0, [0.0; 3]));
    let alpha = std::mem::replace(&mut card.alpha, Plane::new(0, 0));
    let mut obj = scene::build_object(rgb, alpha, spec.screen, sp, cfg);
    let (tone, angle) = (d.has(Artifact::Tone), d.has(Artifact::Angle));
    if spec.screen && (d.has(Artifact::Blur) || tone || angle) {
        let mut shown = obj.rgb.clone();
        if d.has(Artifact::Blur) {
            shown.gaussian_blur(sp.viewer_blur as f32);
        }
        if angle {
            apply_viewed_tone(&mut shown, sp, tone, &sp.view, cfg.knobs.artifact_gain);
        } else if tone {
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

/// Where the card lands in the output image and how finely its texture is drawn.
struct Placement {
    /// Card corners in output pixels (clockwise from top-left).
    corners: [[f64; 2]; 4],
    /// The card's width in output pixels.
    card_out_w: f64,
    /// Card texture width in texels.
    wd: usize,
}

/// Stage C placement (output pixels); it needs only the card's aspect. Texels per output
/// pixel: one per display pixel on a screen, the print density on paper.
fn placement(cfg: &GenConfig, spec: &SampleSpec, d: &Draws) -> Placement {
    let size = cfg.size as usize;
    let corners = scene::place(&d.scene, cfg, 1000.0, 1000.0 / CARD_ASPECT);
    let edge = |a: [f64; 2], b: [f64; 2]| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
    let card_out_w = 0.5 * (edge(corners[0], corners[1]) + edge(corners[3], corners[2]));
    let density = if spec.screen {
        1.0 / d.screen.pitch
    } else {
        d.print_density
    };
    let wd =
        ((card_out_w * density).round() as usize).clamp(48, (MAX_TEXTURE * size as f64) as usize);
    Placement {
        corners,
        card_out_w,
        wd,
    }
}

/// The maps between the card (label grid), the object texture, the sensor and the output.
struct Frames {
    /// Card label grid → output pixels, and back.
    h_card: Homography,
    inv_card: Homography,
    /// Object texture → sensor pixels, and back.
    h_sens: Homography,
    inv_sens: Homography,
    /// Output → sensor pixels.
    to_sensor: Homography,
    /// Sensor pixels per output pixel, and the sensor's side.
    k: f64,
    ws: usize,
    /// The label grid's size.
    cw: usize,
    ch: usize,
}

impl Frames {
    fn new(
        index: usize,
        size: usize,
        sensor_scale: f64,
        corners: &[[f64; 2]; 4],
        obj: &scene::Object,
        card: &Card,
    ) -> Result<Frames, SynthError> {
        let (cw, ch) = card.labels.size();
        let (wc, hc) = (cw as f64, ch as f64);
        let rect = [[0.0, 0.0], [wc, 0.0], [wc, hc], [0.0, hc]];
        let h_card = Homography::from_points(&rect, corners)
            .ok_or_else(|| render_err(index, "degenerate card placement"))?;
        let h_tex = h_card.compose(&Homography::scale_translate(
            1.0,
            1.0,
            -obj.margin[0],
            -obj.margin[1],
        ));
        let ws = ((sensor_scale * size as f64).round() as usize).max(size);
        let k = ws as f64 / size as f64;
        let to_sensor = Homography::scale_translate(k, k, 0.0, 0.0);
        let h_sens = to_sensor.compose(&h_tex);
        let inv_sens = h_sens
            .inverse()
            .ok_or_else(|| render_err(index, "singular homography"))?;
        let inv_card = h_card
            .inverse()
            .ok_or_else(|| render_err(index, "singular homography"))?;
        Ok(Frames {
            h_card,
            inv_card,
            h_sens,
            inv_sens,
            to_sensor,
            k,
            ws,
            cw,
            ch,
        })
    }

    /// The card's rectangle in label-grid units.
    fn card_rect(&self) -> [f64; 4] {
        [0.0, 0.0, self.cw as f64, self.ch as f64]
    }
}

/// The scene on the sensor grid, before the lens: linear light and where the display emits.
struct SensorScene {
    img: Rgb,
    emissive: Plane,
    dos: DisplayOnSensor,
}

/// Stage C on the sensor grid: the desk, the warped object, then the display's light
/// (rolling-shutter bands, the veil of its black level) and the glare on top.
fn scene_on_sensor(
    cfg: &GenConfig,
    spec: &SampleSpec,
    d: &Draws,
    obj: &scene::Object,
    fr: &Frames,
    pl: &Placement,
) -> SensorScene {
    let (sp, sc, ws) = (&d.screen, &d.scene, fr.ws);
    let texels_per_px = pl.wd as f64 / (pl.card_out_w * fr.k);
    let n = (texels_per_px / 1.25).ceil().clamp(1.0, 3.0) as usize;
    let (mut img, emissive) =
        scene::warp(obj, &fr.h_sens, &fr.inv_sens, scene::background(sc, ws), n);
    let tex_centre = [obj.rgb.w as f64 * 0.5, obj.rgb.h as f64 * 0.5];
    let dos = display_on_sensor(
        cfg,
        spec,
        d,
        &fr.inv_sens,
        fr.h_sens.apply(tex_centre[0], tex_centre[1]),
        ws,
    );
    if !dos.bands.is_empty() {
        for y in 0..ws {
            for x in 0..ws {
                let e = emissive.px[y * ws + x];
                if e > 0.0 {
                    let f = 1.0 + e * (dos.band_at(x, y, sp.readout_rows) as f32 - 1.0);
                    img.px[(y * ws + x) * 3..(y * ws + x) * 3 + 3]
                        .iter_mut()
                        .for_each(|v| *v *= f);
                }
            }
        }
    }
    if spec.screen && d.has(Artifact::Veil) {
        for (i, v) in img.px.iter_mut().enumerate() {
            *v += (sp.veil * emissive.px[i / 3] as f64) as f32;
        }
    }
    let card_bb_sensor = scene::bbox(&fr.to_sensor.compose(&fr.h_card), &fr.card_rect());
    let glare = scene::glare_field(sc, card_bb_sensor, ws);
    let warm = [1.0, 0.98, 0.94];
    for (p, &add) in img.px.chunks_exact_mut(3).zip(&glare) {
        if add > 0.0 {
            for k in 0..3 {
                p[k] += (add * warm[k]) as f32;
            }
        }
    }
    SensorScene { img, emissive, dos }
}

/// Stage D: lens, Bayer sensor (the display grid modulates the light each photosite sees),
/// noise, demosaicing, tone, sharpening, JPEG, the resize to the output and the upload JPEG.
/// Leaves `s.img` as the light that reached the mosaic (after exposure and blur). Returns the
/// output bytes and, when `masks`, the grid's part of the raw mosaic (else an empty plane).
fn capture(
    cfg: &GenConfig,
    spec: &SampleSpec,
    d: &Draws,
    s: &mut SensorScene,
    inv_sens: &Homography,
    masks: bool,
) -> (Vec<u8>, Plane) {
    let (cam, size, ws) = (&d.camera, cfg.size as usize, s.img.w);
    let (img, emissive) = (&mut s.img, &s.emissive);
    let ev = 2f64.powf(cam.exposure_ev);
    scene::light(img, &d.scene, cam.wb.map(|w| w * ev));
    img.gaussian_blur(cam.blur as f32);
    img.motion_blur((cam.motion_len) as f32, cam.motion_angle as f32);
    let mut raw = Plane::new(ws, ws);
    let mut grid_part = if masks && s.dos.grid.is_some() {
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
            raw.px[j] = match &s.dos.grid {
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
    let jpeg_bytes = jpeg::round_trip(ws, ws, &camera::to_bytes(&shown), cam.quality, cam.chroma);
    let out = camera::resize_bytes(ws, ws, &jpeg_bytes, size, cam.resize);
    let mut rgb8 = camera::to_bytes(&out);
    if let Some(q) = cam.upload_q {
        rgb8 = jpeg::round_trip(size, size, &rgb8, q, cam.upload_chroma);
    }
    (rgb8, grid_part)
}

/// Region labels of the output pixels: nearest-neighbour through the card's homography.
fn region_bits(card: &Card, fr: &Frames, size: usize) -> Vec<u16> {
    let (wc, hc) = (fr.cw as f64, fr.ch as f64);
    let mut bits = vec![0u16; size * size];
    for y in 0..size {
        for x in 0..size {
            let [u, v] = fr.inv_card.apply(x as f64 + 0.5, y as f64 + 0.5);
            if u >= 0.0 && v >= 0.0 && u < wc && v < hc {
                let (ui, vi) = ((u as usize).min(fr.cw - 1), (v as usize).min(fr.ch - 1));
                bits[y * size + x] = card.labels.at(ui, vi);
            }
        }
    }
    bits
}

/// The artifact masks (where the moiré, the bands and the glare are visible in the output),
/// or'ed into `bits`; returns each mask's area for the manifest.
fn mark_artifacts(
    bits: &mut [u16],
    d: &Draws,
    s: &SensorScene,
    grid_part: &Plane,
    fr: &Frames,
    size: usize,
) -> serde_json::Map<String, serde_json::Value> {
    let (sc, ws, k) = (&d.scene, fr.ws, fr.k);
    let mut areas = serde_json::Map::new();
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
        let vis = grid_visibility(grid_part, &s.img, &d.camera, size);
        mark("moire", &|i| vis[i]);
    }
    if !s.dos.bands.is_empty() {
        let em = camera::resize_plane(&s.emissive, size, camera::Resize::Area);
        mark("bands", &|i| {
            let (x, y) = (i % size, i / size);
            let (sx, sy) = (
                (((x as f64 + 0.5) * k) as usize).min(ws - 1),
                (((y as f64 + 0.5) * k) as usize).min(ws - 1),
            );
            em.px[i] > 0.5
                && (s.dos.band_at(sx, sy, d.screen.readout_rows) - 1.0).abs() > BAND_VISIBLE
        });
    }
    if sc.glare.is_some() {
        let field = scene::glare_field(sc, scene::bbox(&fr.h_card, &fr.card_rect()), size);
        mark("glare", &|i| field[i] > GLARE_VISIBLE);
    }
    areas
}

/// The card's named boxes in output pixels, rounded outwards and clipped to the image.
fn output_boxes(card: &Card, h_card: &Homography, size: usize) -> Vec<(String, [u32; 4])> {
    let sz = size as f64;
    card.boxes
        .iter()
        .map(|(name, b)| {
            let bb = scene::bbox(h_card, b);
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
        .collect()
}

/// The manifest's record of every drawn parameter of the sample.
fn sample_params(
    cfg: &GenConfig,
    spec: &SampleSpec,
    d: &Draws,
    pl: &Placement,
    fr: &Frames,
    card: &Card,
    dos: &DisplayOnSensor,
) -> serde_json::Value {
    let (sp, sc, cam) = (&d.screen, &d.scene, &d.camera);
    let mut params = serde_json::json!({
        "card": card.params,
        "scene": {
            "corners": pl.corners.map(|p| [round3(p[0]), round3(p[1])]),
            "scale": round3(sc.scale),
            "rotation-deg": round3(sc.rotation.to_degrees()),
            "light-gradient": round3(sc.light_g),
            "vignette": round3(sc.vignette),
            "shadow": sc.shadow.is_some(),
            "glare-gain": sc.glare.map(|g| round3(g.gain)),
            "texture-px": pl.wd,
        },
        "camera": {
            "sensor-scale": round3(fr.k),
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
    if cfg.knobs.defocus_prob > 0.0 {
        params["camera"]["defocus-px"] = cam.defocus.map(round3).into();
    }
    if cfg.knobs.jpeg_420_prob > 0.0 {
        params["camera"]["jpeg-chroma"] = cam.chroma.name().into();
        params["camera"]["upload-chroma"] = cam.upload_q.map(|_| cam.upload_chroma.name()).into();
    }
    if spec.screen {
        params["screen"] = serde_json::json!({
            "layout": sp.layout.name(),
            "pitch-px": round3(pl.card_out_w / pl.wd as f64),
            "fill": sp.fill.map(round3),
            "grid-amplitude": dos.grid.as_ref().map(|g| round3(g.peak_amplitude())),
            "pwm-hz": dos.bands.first().and(sp.pwm.map(|p| round3(p.0))),
            "pwm-duty": dos.bands.first().and(sp.pwm.map(|p| round3(p.1))),
            "jpeg-q1": sp.q1.filter(|_| d.has(Artifact::DoubleJpeg)),
            "gamma": d.has(Artifact::Tone).then_some(round3(sp.gamma)),
            "black-level": d.has(Artifact::Tone).then_some(round3(sp.black)),
            "blue-red": d.has(Artifact::Tone).then_some(round3(sp.blue_red)),
        });
        if let Some(sh) = &sp.shape {
            // Per channel R, G, B: [width, height] scale and [x, y] shift, display pixels.
            params["screen"]["subpixel-scale"] = sh.scale.map(|c| c.map(round3)).into();
            params["screen"]["subpixel-shift"] = sh.shift.map(|c| c.map(round3)).into();
        }
        if cfg.knobs.cue_dropout > 0.0 {
            params["screen"]["effects"] = d.effects.iter().map(|a| a.name()).collect();
        }
        if d.has(Artifact::Angle) {
            let v = &sp.view;
            params["screen"]["panel"] = v.panel.name().into();
            params["screen"]["view-sine"] =
                round3((v.tilt[0] * v.tilt[0] + v.tilt[1] * v.tilt[1]).sqrt()).into();
        }
    }
    params
}

/// Render one sample. `twin` swaps the flag family (counterfactual: everything else equal).
/// Artifact masks are computed when `masks` is true.
pub fn render(
    cfg: &GenConfig,
    spec: &SampleSpec,
    twin: bool,
    masks: bool,
) -> Result<Rendered, SynthError> {
    let mixed = cfg.sizes.is_some();
    let cfg = &*cfg.for_sample(spec.index);
    let size = cfg.size as usize;
    let family = if twin {
        spec.family.other()
    } else {
        spec.family
    };
    let d = draw(cfg, spec, family);
    let pl = placement(cfg, spec, &d);
    // Stages A and B: the card, shown on the display for recaptures.
    let (obj, card) = object(cfg, spec, &d, pl.wd);
    let fr = Frames::new(spec.index, size, d.camera.scale, &pl.corners, &obj, &card)?;
    // Stage C on the sensor grid, then stage D.
    let mut sensor = scene_on_sensor(cfg, spec, &d, &obj, &fr, &pl);
    let (rgb8, grid_part) = capture(cfg, spec, &d, &mut sensor, &fr.inv_sens, masks);
    let mut bits = region_bits(&card, &fr, size);
    let areas = if masks {
        mark_artifacts(&mut bits, &d, &sensor, &grid_part, &fr, size)
    } else {
        serde_json::Map::new()
    };
    let boxes = output_boxes(&card, &fr.h_card, size);
    let mut params = sample_params(cfg, spec, &d, &pl, &fr, &card, &sensor.dos);
    if !areas.is_empty() {
        params["mask-areas"] = serde_json::Value::Object(areas);
    }
    if mixed {
        // Photos of several sides: the side is a draw like any other (`eval --by size`).
        params["size"] = cfg.size.into();
    }
    Ok(Rendered {
        size: cfg.size,
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
mod tests;
