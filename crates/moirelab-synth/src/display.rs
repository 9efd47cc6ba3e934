//! The display of a screen recapture, as physics: a grid of sub-pixel apertures that emit the
//! shown content, a panel tone curve, and a PWM-dimmed backlight read by a rolling shutter.
//!
//! Nothing here draws a pattern onto the image. The camera (see `camera.rs`) samples the
//! emitted light: the sub-pixel grid is written as its Fourier series (each aperture is a
//! rectangle, whose transform is a product of sincs), every harmonic is attenuated by what the
//! camera does to that spatial frequency (lens blur, motion blur, the sensor pixel's area) and
//! then evaluated at the sensor pixel centres. Harmonics above the sensor's Nyquist frequency
//! fold back: that folding *is* moiré, and the colour filter array folds the red and blue
//! planes again (colour moiré). Whether a beat is visible, its period, direction and colour all
//! follow from the display pitch, the card's scale and angle on the screen, the optics and
//! the sensor. See docs/SYNTH.md.

use crate::config::{GenConfig, Holdout};
use crate::raster::{cos_turns, ffloor, lin, pow01_f32, Rgb};
use crate::sampling::{log_uniform, log_uniform_band, pick, Hold};
use crate::viewing::View;
use moirelab_core::rng::Rng;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// Sub-pixel layouts of common panels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// LCD: three vertical stripes R, G, B per pixel (most desktop monitors).
    RgbStripe,
    /// LCD: B, G, R (some TVs and monitors mounted upside down).
    BgrStripe,
    /// Stripes stacked vertically: an RGB panel rotated by 90° (a portrait phone or tablet
    /// shown in landscape).
    VerticalStripe,
    /// OLED diamond PenTile (RGBG): a green sub-pixel per pixel, red and blue on a
    /// checkerboard at half density (most phone OLEDs).
    Pentile,
    /// LCD delta: R, G, B stripes half a pixel shifted on every other row (camera
    /// viewfinders, small and older panels).
    Delta,
    /// OLED S-stripe: a tall blue sub-pixel beside red over green (some phones and watches).
    SStripe,
    /// OLED diamond pixel: green squares on the pixel grid, red and blue squares turned by
    /// 45° on a checkerboard between them (recent phone OLEDs).
    Diamond,
    /// WOLED: white, red, green and blue stripes; the white one emits every channel (large
    /// OLED TVs).
    Rgbw,
}

impl Layout {
    pub const ALL: [Layout; 8] = [
        Layout::RgbStripe,
        Layout::BgrStripe,
        Layout::VerticalStripe,
        Layout::Pentile,
        Layout::Delta,
        Layout::SStripe,
        Layout::Diamond,
        Layout::Rgbw,
    ];
    /// The layouts the generator draws unless the `layouts` knob says otherwise: the four it
    /// has always drawn, so data sets made before the others existed keep their bytes.
    pub const CLASSIC: [Layout; 4] = [
        Layout::RgbStripe,
        Layout::BgrStripe,
        Layout::VerticalStripe,
        Layout::Pentile,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Layout::RgbStripe => "rgb-stripe",
            Layout::BgrStripe => "bgr-stripe",
            Layout::VerticalStripe => "vertical-stripe",
            Layout::Pentile => "pentile",
            Layout::Delta => "delta",
            Layout::SStripe => "s-stripe",
            Layout::Diamond => "diamond",
            Layout::Rgbw => "rgbw",
        }
    }

    pub fn parse(s: &str) -> Option<Layout> {
        Layout::ALL.into_iter().find(|l| l.name() == s)
    }

    /// The names of `layouts`, comma-separated, as messages list them.
    pub fn list(layouts: &[Layout]) -> String {
        layouts
            .iter()
            .map(|l| l.name())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// OLED panels emit per sub-pixel (true black); the stripes and delta are LCDs with a
    /// backlight.
    pub fn is_oled(self) -> bool {
        matches!(
            self,
            Layout::Pentile | Layout::SStripe | Layout::Diamond | Layout::Rgbw
        )
    }
}

/// A panel's own sub-pixel geometry (knob `subpixel-jitter`): per colour channel, its
/// apertures' width and height scaled and their centres moved (display pixels), the same in
/// every period cell, so the panel stays periodic. Manufacturers draw the same layout with
/// different sub-pixel sizes, aspect ratios and spacings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SubpixelShape {
    pub scale: [[f64; 2]; 3],
    pub shift: [[f64; 2]; 3],
}

impl SubpixelShape {
    /// Widest scale change and shift at `subpixel-jitter = 1`: ±30 % per axis (a sub-pixel's
    /// aspect ratio 0.54–1.9 times the plain layout's), and a tenth of a display pixel (about
    /// the black matrix's width between stripes).
    pub const SCALE: f64 = 0.3;
    pub const SHIFT: f64 = 0.1;

    pub(crate) fn draw(rng: &mut Rng, jitter: f64) -> SubpixelShape {
        let mut s = SubpixelShape {
            scale: [[1.0; 2]; 3],
            shift: [[0.0; 2]; 3],
        };
        for c in 0..3 {
            for d in 0..2 {
                s.scale[c][d] = 1.0 + jitter * Self::SCALE * rng.range(-1.0, 1.0);
                s.shift[c][d] = jitter * Self::SHIFT * rng.range(-1.0, 1.0);
            }
        }
        s
    }
}

/// One emitting aperture inside the layout's period cell, in display pixels: a rectangle of
/// `size` centred at `centre`, turned by `angle` radians.
#[derive(Debug, Clone, Copy)]
struct Aperture {
    channel: usize,
    centre: [f64; 2],
    size: [f64; 2],
    angle: f64,
}

impl Aperture {
    fn new(channel: usize, centre: [f64; 2], size: [f64; 2]) -> Aperture {
        Aperture {
            channel,
            centre,
            size,
            angle: 0.0,
        }
    }

    /// Its Fourier coefficient at `g` (cycles per display pixel) in a period of `area`:
    /// `(w·h/area)·sinc(g·e₁·w)·sinc(g·e₂·h)·e^{−2πi g·c}`, `e₁`, `e₂` the rectangle's own axes.
    fn coefficient(&self, g: [f64; 2], area: f64) -> (f64, f64) {
        let (s, c) = self.angle.sin_cos();
        let along = g[0] * c + g[1] * s;
        let across = -g[0] * s + g[1] * c;
        let mag = self.size[0] * self.size[1] / area
            * sinc(along * self.size[0])
            * sinc(across * self.size[1]);
        let ph = -2.0 * PI * (g[0] * self.centre[0] + g[1] * self.centre[1]);
        (mag * ph.cos(), mag * ph.sin())
    }
}

/// The period cell (display pixels) and the apertures of a layout. `fill` is the fraction of
/// the pixel's width and height that emits (the rest is the black matrix); `shape` is the
/// panel's own sub-pixel geometry, if drawn.
fn apertures(
    layout: Layout,
    fill: [f64; 2],
    shape: Option<&SubpixelShape>,
) -> ([f64; 2], Vec<Aperture>) {
    // Stripes: the colours of `order` in equal slots across the pixel (3: RGBW's white, which
    // emits every channel), on the pixel row starting at `row`, moved along it by `dx`.
    let stripe = |order: &[usize], vertical: bool, row: f64, dx: f64| {
        let n = order.len() as f64;
        let mut aps = Vec::new();
        for (slot, &ch) in order.iter().enumerate() {
            let along = (slot as f64 + 0.5) / n + dx;
            let (centre, size) = if vertical {
                ([0.5, along], [fill[1], fill[0] / n])
            } else {
                ([along, row + 0.5], [fill[0] / n, fill[1]])
            };
            let channels = if ch == 3 { 0..3 } else { ch..ch + 1 };
            aps.extend(channels.map(|c| Aperture::new(c, centre, size)));
        }
        aps
    };
    // A 2×2-pixel checkerboard cell: a green square of side `green·fill` at `g` in every pixel,
    // and a red or blue one (alternating) of side `fill / 2` at `rb`, turned by `angle`.
    let checker = |g: [f64; 2], green: f64, rb: [f64; 2], angle: f64| {
        let mut aps = Vec::new();
        for j in 0..2 {
            for i in 0..2 {
                let (x, y) = (i as f64, j as f64);
                aps.push(Aperture::new(
                    1,
                    [x + g[0], y + g[1]],
                    [green * fill[0], green * fill[1]],
                ));
                aps.push(Aperture {
                    angle,
                    ..Aperture::new(
                        if (i + j) % 2 == 0 { 0 } else { 2 },
                        [x + rb[0], y + rb[1]],
                        [0.5 * fill[0], 0.5 * fill[1]],
                    )
                });
            }
        }
        aps
    };
    let (period, mut aps) = match layout {
        Layout::RgbStripe => ([1.0, 1.0], stripe(&[0, 1, 2], false, 0.0, 0.0)),
        Layout::BgrStripe => ([1.0, 1.0], stripe(&[2, 1, 0], false, 0.0, 0.0)),
        Layout::VerticalStripe => ([1.0, 1.0], stripe(&[0, 1, 2], true, 0.0, 0.0)),
        Layout::Rgbw => ([1.0, 1.0], stripe(&[3, 0, 1, 2], false, 0.0, 0.0)),
        Layout::Delta => {
            let mut aps = stripe(&[0, 1, 2], false, 0.0, 0.0);
            aps.extend(stripe(&[0, 1, 2], false, 1.0, 0.5));
            ([1.0, 2.0], aps)
        }
        Layout::SStripe => (
            [1.0, 1.0],
            vec![
                Aperture::new(0, [0.25, 0.27], [0.45 * fill[0], 0.42 * fill[1]]),
                Aperture::new(1, [0.25, 0.73], [0.45 * fill[0], 0.42 * fill[1]]),
                Aperture::new(2, [0.75, 0.5], [0.45 * fill[0], fill[1]]),
            ],
        ),
        // 2×2 pixels per period: green at every pixel, red and blue alternating (PenTile: beside
        // the green; diamond: squares turned by 45° on the pixel corners).
        Layout::Pentile => ([2.0, 2.0], checker([0.75, 0.5], 0.35, [0.25, 0.5], 0.0)),
        Layout::Diamond => ([2.0, 2.0], checker([0.5, 0.5], 0.4, [0.0, 0.0], PI / 4.0)),
    };
    if let Some(s) = shape {
        for a in &mut aps {
            for d in 0..2 {
                a.size[d] *= s.scale[a.channel][d];
                a.centre[d] += s.shift[a.channel][d];
            }
        }
    }
    (period, aps)
}

#[inline]
fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-9 {
        1.0
    } else {
        (PI * x).sin() / (PI * x)
    }
}

/// One retained harmonic of the grid: `g` in cycles per display pixel, and per channel the
/// amplitude (already attenuated by the camera) and phase in turns of
/// `A·cos(2π(g·u + φ))`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Harmonic {
    pub g: [f64; 2],
    pub amp: [f64; 3],
    pub phase: [f64; 3],
}

/// What the camera does to one spatial frequency before its pixels sample it.
#[derive(Debug, Clone, Copy)]
pub struct Transfer {
    /// `∂u/∂x`: display pixels per sensor pixel at the card centre (`[row][col]` =
    /// `∂u_row/∂x_col`).
    pub jacobian: [[f64; 2]; 2],
    /// Gaussian lens blur, sensor pixels.
    pub blur_sigma: f64,
    /// Linear motion blur vector, sensor pixels.
    pub motion: [f64; 2],
    /// Side of the sensor pixel's light-sensitive area as a fraction of the pitch.
    pub aperture: f64,
}

impl Transfer {
    /// The frequency `g` (cycles per display pixel) in cycles per sensor pixel.
    pub fn in_sensor_px(&self, g: [f64; 2]) -> [f64; 2] {
        let a = &self.jacobian;
        [
            a[0][0] * g[0] + a[1][0] * g[1],
            a[0][1] * g[0] + a[1][1] * g[1],
        ]
    }

    /// Modulation transfer (signed: a box aperture inverts some bands) at frequency `g`.
    pub fn at(&self, g: [f64; 2]) -> f64 {
        let f = self.in_sensor_px(g);
        let f2 = f[0] * f[0] + f[1] * f[1];
        let lens = (-2.0 * PI * PI * self.blur_sigma * self.blur_sigma * f2).exp();
        let pixel = sinc(f[0] * self.aperture) * sinc(f[1] * self.aperture);
        let motion = sinc(f[0] * self.motion[0] + f[1] * self.motion[1]);
        lens * pixel * motion
    }
}

/// Smallest amplitude worth evaluating: a quarter of an 8-bit step at full white.
const MIN_AMP: f64 = 1e-3;
/// Most harmonics kept per sample (largest first).
const MAX_HARMONICS: usize = 16;

/// The sub-pixel grid as seen by a camera: a short list of attenuated harmonics.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    pub harmonics: Vec<Harmonic>,
}

impl Grid {
    /// Fourier series of the layout (each channel normalised to mean 1), attenuated by `t`
    /// and scaled by `gain` (0 switches the grid off: a uniformly emitting surface).
    pub fn new(
        layout: Layout,
        fill: [f64; 2],
        shape: Option<&SubpixelShape>,
        t: &Transfer,
        gain: f64,
    ) -> Grid {
        let (period, aps) = apertures(layout, fill, shape);
        let mut dc = [0.0f64; 3];
        for a in &aps {
            dc[a.channel] += a.size[0] * a.size[1] / (period[0] * period[1]);
        }
        // Harmonics up to 4 cycles per display pixel; the camera's transfer removes the rest.
        let kmax = (4.0 * period[0]) as i32;
        let lmax = (4.0 * period[1]) as i32;
        let mut hs = Vec::new();
        for l in 0..=lmax {
            for k in -kmax..=kmax {
                // One of each ± pair: the pair sums to twice the real part.
                if l == 0 && k <= 0 {
                    continue;
                }
                let g = [k as f64 / period[0], l as f64 / period[1]];
                let tr = t.at(g) * gain;
                if tr.abs() < MIN_AMP {
                    continue;
                }
                let mut re = [0.0f64; 3];
                let mut im = [0.0f64; 3];
                for a in &aps {
                    let (r, i) = a.coefficient(g, period[0] * period[1]);
                    re[a.channel] += r;
                    im[a.channel] += i;
                }
                let mut amp = [0.0f64; 3];
                let mut phase = [0.0f64; 3];
                for c in 0..3 {
                    let m = (re[c] * re[c] + im[c] * im[c]).sqrt() / dc[c];
                    amp[c] = 2.0 * m * tr;
                    phase[c] = im[c].atan2(re[c]) / (2.0 * PI);
                }
                if amp.iter().any(|a| a.abs() >= MIN_AMP) {
                    hs.push(Harmonic { g, amp, phase });
                }
            }
        }
        hs.sort_by(|a, b| {
            let m = |h: &Harmonic| h.amp.iter().map(|v| v.abs()).fold(0.0, f64::max);
            m(b).total_cmp(&m(a))
        });
        hs.truncate(MAX_HARMONICS);
        Grid { harmonics: hs }
    }

    /// Emission of channel `c` at display position `u` relative to the content (mean 1).
    #[inline]
    pub fn at(&self, c: usize, u: [f64; 2]) -> f64 {
        let mut m = 1.0;
        for h in &self.harmonics {
            m += h.amp[c] * cos_turns(h.g[0] * u[0] + h.g[1] * u[1] + h.phase[c]);
        }
        m
    }

    /// Largest single-harmonic amplitude (a summary for the manifest).
    pub fn peak_amplitude(&self) -> f64 {
        self.harmonics
            .iter()
            .flat_map(|h| h.amp)
            .map(f64::abs)
            .fold(0.0, f64::max)
    }
}

/// A backlight (or OLED) dimmed by pulse-width modulation, read out by a rolling shutter: row
/// `r` of the sensor integrates the light from `t0 + r·row_time` for `exposure` seconds, so
/// rows see different shares of the on-phase. Times in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pwm {
    pub frequency: f64,
    pub duty: f64,
    pub exposure: f64,
    /// Readout time of one row of the sensor grid.
    pub row_time: f64,
    pub t0: f64,
}

impl Pwm {
    /// On-time of the square wave in `[0, t]`.
    fn on_time(&self, t: f64) -> f64 {
        let p = 1.0 / self.frequency;
        let n = ffloor(t / p);
        n * self.duty * p + (t - n * p).min(self.duty * p)
    }

    /// Mean emission of sensor row `row` relative to the long-exposure mean (1).
    pub fn row_gain(&self, row: f64) -> f64 {
        let a = self.t0 + row * self.row_time;
        let on = self.on_time(a + self.exposure) - self.on_time(a);
        on / (self.exposure * self.duty)
    }
}

/// Everything about the screen of one recapture (drawn for every sample so the label never
/// shifts another stage's random numbers; used only for recaptures).
#[derive(Debug, Clone)]
pub(crate) struct ScreenParams {
    pub(crate) layout: Layout,
    /// Emitting fraction of a pixel's width and height.
    pub(crate) fill: [f64; 2],
    /// Size of one display pixel in output pixels.
    pub(crate) pitch: f64,
    /// Quality of the attacker's JPEG file, when the shown file was a JPEG.
    pub(crate) q1: Option<u8>,
    /// The viewer's resampling blur, display pixels.
    pub(crate) viewer_blur: f64,
    pub(crate) gamma: f64,
    pub(crate) blue_red: f64,
    pub(crate) saturation: f64,
    pub(crate) black: f64,
    pub(crate) white: f64,
    /// PWM frequency (Hz) and duty cycle, for PWM-dimmed panels.
    pub(crate) pwm: Option<(f64, f64)>,
    /// Rolling-shutter readout time of the whole frame (s) and the phase of the PWM wave.
    pub(crate) readout: f64,
    pub(crate) pwm_t0: f64,
    /// Readout runs down the image's rows (false: along its columns, a rotated phone).
    pub(crate) readout_rows: bool,
    pub(crate) veil: f64,
    pub(crate) canvas_margin: f64,
    pub(crate) canvas_colour: [f32; 3],
    pub(crate) bezel_width: f64,
    /// How the camera sees the panel (used with the `angle` artifact).
    pub(crate) view: View,
    /// The panel's own sub-pixel geometry (`subpixel-jitter` > 0), else the plain layout's.
    pub(crate) shape: Option<SubpixelShape>,
}

impl ScreenParams {
    /// Ranges (and why):
    /// - pitch (knob `pitch-min/max`, default 0.45–1.8 output px per display px): what
    ///   matters is the pitch on the sensor (pitch × sensor scale, 0.6–5.4 sensor px), where
    ///   phone photos of screens resolve or alias the grid; finer pitches are physically
    ///   possible but mostly leave no trace after the lens and are label noise (measured:
    ///   `pitch-min = 0.25` trains a worse detector, also on those screens; docs/SYNTH.md).
    /// - layout (knob `layouts`, default the classic four: RGB, BGR and stacked stripes,
    ///   PenTile), uniformly; `subpixel-jitter` (default 0) gives each panel its own sub-pixel
    ///   sizes and spacing ([`SubpixelShape`]), so no one geometry is the screen's signature.
    /// - fill: the black matrix leaves 60–95 % of a pixel's width and 70–95 % of its height
    ///   emitting.
    /// - tone: panel gamma 2.0–2.6 against the file's 2.2 (ratio 0.85–1.2), white point
    ///   5000–9300 K (blue/red 0.92–1.10: either side of D65, so tint alone is no cue),
    ///   gamut 0.9–1.2× saturation, LCD black 0.2–3 % of white (OLED: none), peak 85–100 %.
    /// - PWM: half the panels are flicker-free; the others dim at 90–2500 Hz with a 15–90 %
    ///   duty; a frame reads out in 8–33 ms.
    pub(crate) fn draw(rng: &mut Rng, cfg: &GenConfig, hold: Hold) -> ScreenParams {
        let k = &cfg.knobs;
        let g = k.artifact_gain;
        let dev = |rng: &mut Rng, lo: f64, hi: f64, id: f64| id + g * (rng.range(lo, hi) - id);
        let held_layout = match k.holdout {
            Holdout::Layout(l) => Some(l),
            _ => None,
        };
        let layout = pick(rng, &k.layouts, held_layout, hold);
        let fill = [rng.range(0.6, 0.95), rng.range(0.7, 0.95)];
        let band = match k.holdout {
            Holdout::Pitch(a, b) => Some((a, b)),
            _ => None,
        };
        let pitch = log_uniform_band(rng, k.pitch_min, k.pitch_max, band, hold);
        let jpeg_file = rng.bernoulli(0.5);
        let q1 = (75 + rng.below(21)) as u8;
        let viewer_blur = rng.range(0.0, 0.5);
        let gamma = dev(rng, 0.85, 1.2, 1.0);
        let blue_red = dev(rng, 0.92, 1.10, 1.0);
        let saturation = dev(rng, 0.9, 1.2, 1.0);
        let black_lcd = g * rng.range(0.002, 0.03);
        let white = 1.0 - g * (1.0 - rng.range(0.85, 1.0));
        let pwm_on = rng.bernoulli(k.pwm_prob);
        let pwm = (log_uniform(rng, 90.0, 2500.0), rng.range(0.15, 0.9));
        ScreenParams {
            layout,
            fill,
            pitch,
            q1: jpeg_file.then_some(q1),
            viewer_blur,
            gamma,
            blue_red,
            saturation,
            black: if layout.is_oled() { 0.0 } else { black_lcd },
            white: white.max(0.3),
            pwm: pwm_on.then_some(pwm),
            readout: rng.range(0.008, 0.033),
            pwm_t0: rng.f64(),
            readout_rows: rng.bernoulli(0.7),
            veil: g * rng.range(0.005, 0.03),
            canvas_margin: rng.range(0.08, 0.25),
            canvas_colour: if rng.bernoulli(0.5) {
                lin([(20 + rng.below(40)) as u8; 3])
            } else {
                lin([(215 + rng.below(35)) as u8; 3])
            },
            bezel_width: rng.range(0.03, 0.07),
            // Drawn last: the draws above are those of data sets made before it existed.
            view: View::draw(rng, layout.is_oled()),
            // After the view, and only when asked for, for the same reason.
            shape: (k.subpixel_jitter > 0.0).then(|| SubpixelShape::draw(rng, k.subpixel_jitter)),
        }
    }

    /// The rolling-shutter reading of this panel's PWM for a sensor of `rows` rows, or None
    /// for a flicker-free panel.
    pub(crate) fn pwm(&self, rows: usize, exposure: f64) -> Option<Pwm> {
        self.pwm.map(|(frequency, duty)| Pwm {
            frequency,
            duty,
            exposure,
            row_time: self.readout / rows as f64,
            t0: self.pwm_t0,
        })
    }
}

/// The panel's power curve `black + (white − black)·v^γ` on `v ∈ [0, 1]`, read from a
/// 4097-entry table with linear interpolation (error < 5e-5 in linear light, a sixth of the
/// smallest 8-bit sRGB step).
struct ToneCurve {
    lut: Vec<f32>,
}

impl ToneCurve {
    const N: usize = 4096;

    fn new(gamma: f32, black: f32, white: f32) -> ToneCurve {
        let range = white - black;
        let lut = (0..=Self::N)
            .map(|i| black + range * pow01_f32(i as f32 / Self::N as f32, gamma))
            .collect();
        ToneCurve { lut }
    }

    /// The curve at `v`, clamped to [0, 1] first.
    #[inline]
    fn at(&self, v: f32) -> f32 {
        let t = v.clamp(0.0, 1.0) * Self::N as f32;
        // `t` is in [0, N] (or NaN, which both conversions take to 0): through i32 is one
        // instruction and the same index as the saturating `as usize`.
        let i = (t as i32 as usize).min(Self::N - 1);
        let f = t - i as f32;
        self.lut[i] + (self.lut[i + 1] - self.lut[i]) * f
    }
}

/// The panel's tone curve, white point and gamut, applied to the shown content (linear
/// light).
pub(crate) fn apply_tone(img: &mut Rgb, sp: &ScreenParams) {
    let rb = sp.blue_red.sqrt();
    let gains = [(1.0 / rb) as f32, 1.0, rb as f32];
    let sat = sp.saturation as f32;
    let curve = ToneCurve::new(sp.gamma as f32, sp.black as f32, sp.white as f32);
    for p in img.px.chunks_exact_mut(3) {
        let v = saturate_balance(p, sat, gains);
        for k in 0..3 {
            p[k] = curve.at(v[k]);
        }
    }
}

/// A panel's gamut (saturation about the pixel's luminance) and white balance (per-channel
/// gains) on one linear-light pixel, before its tone curve. Shared by the on-axis tone and the
/// off-axis view (`viewing.rs`), which changes the gains pixel by pixel.
pub(crate) fn saturate_balance(p: &[f32], sat: f32, gains: [f32; 3]) -> [f32; 3] {
    let l = 0.2126 * p[0] + 0.7152 * p[1] + 0.0722 * p[2];
    std::array::from_fn(|k| (l + (p[k] - l) * sat) * gains[k])
}

#[cfg(test)]
mod tests;
