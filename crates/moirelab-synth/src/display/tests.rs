//! Unit tests of `display.rs` (kept apart so the module reads as its code).

use super::*;

fn transfer(pitch: f64, sigma: f64) -> Transfer {
    Transfer {
        jacobian: [[1.0 / pitch, 0.0], [0.0, 1.0 / pitch]],
        blur_sigma: sigma,
        motion: [0.0, 0.0],
        aperture: 1.0,
    }
}

/// Gaussian CDF through erf (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7).
fn phi(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.3275911 * z);
    let poly = t
        * (0.254829592
            + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let erf = 1.0 - poly * (-z * z).exp();
    0.5 * (1.0 + if x < 0.0 { -erf } else { erf })
}

#[test]
fn series_matches_the_exactly_blurred_apertures() {
    // The attenuated series equals the aperture map blurred by the same Gaussian (point
    // sampling: aperture 0), integrated exactly: every aperture is a rectangle, and an
    // isotropic Gaussian looks the same from the rectangle's own axes, so its blurred
    // coverage is a product of two differences of the Gaussian CDF there. At σ = 0.35
    // display px the truncation at 4 cycles/px and the pruning lose < 3e-3. Every layout,
    // plain and with a panel's own sub-pixel geometry (turned diamonds included).
    let sigma = 0.35;
    let mut rng = Rng::new(7);
    let shapes = [None, Some(SubpixelShape::draw(&mut rng, 1.0))];
    for layout in Layout::ALL {
        for shape in &shapes {
            let fill = [0.8, 0.9];
            let t = Transfer {
                aperture: 0.0,
                ..transfer(1.0, sigma)
            };
            let grid = Grid::new(layout, fill, shape.as_ref(), &t, 1.0);
            let (p, aps) = apertures(layout, fill, shape.as_ref());
            for &u in &[[0.1, 0.2], [0.5, 0.5], [1.3, 0.7], [0.77, 1.91]] {
                for c in 0..3 {
                    let (mut cover, mut area) = (0.0, 0.0);
                    for a in aps.iter().filter(|a| a.channel == c) {
                        area += a.size[0] * a.size[1] / (p[0] * p[1]);
                        let (sin, cos) = a.angle.sin_cos();
                        for j in -4..=4 {
                            for i in -4..=4 {
                                // u relative to this copy's centre, in its own axes.
                                let d = [
                                    u[0] - a.centre[0] - i as f64 * p[0],
                                    u[1] - a.centre[1] - j as f64 * p[1],
                                ];
                                let local = [d[0] * cos + d[1] * sin, -d[0] * sin + d[1] * cos];
                                let side = |k: usize| {
                                    let h = a.size[k] / 2.0;
                                    phi((h - local[k]) / sigma) - phi((-h - local[k]) / sigma)
                                };
                                cover += side(0) * side(1);
                            }
                        }
                    }
                    let exact = cover / area;
                    let series = grid.at(c, u);
                    assert!(
                        (exact - series).abs() < 3e-3,
                        "{layout:?} {shape:?} c{c} at {u:?}: exact {exact} series {series}"
                    );
                }
            }
        }
    }
}

#[test]
fn each_layout_has_its_own_spectrum_and_a_panel_shape_changes_it() {
    // Every channel of every layout emits on average (a mean-1 series needs dc > 0), the
    // layouts differ from one another as the camera sees them, and a drawn sub-pixel
    // geometry changes the harmonics while jitter 0 draws none.
    let t = transfer(3.0, 0.3);
    let grids: Vec<Grid> = Layout::ALL
        .iter()
        .map(|&l| Grid::new(l, [0.8, 0.9], None, &t, 1.0))
        .collect();
    for (i, a) in grids.iter().enumerate() {
        assert!(a.peak_amplitude() > 0.05, "{:?}", Layout::ALL[i]);
        for (j, b) in grids.iter().enumerate().skip(i + 1) {
            assert_ne!(a, b, "{:?} and {:?}", Layout::ALL[i], Layout::ALL[j]);
        }
    }
    let mut rng = Rng::new(3);
    let shape = SubpixelShape::draw(&mut rng, 1.0);
    for d in 0..2 {
        for c in 0..3 {
            let (sc, sh) = (shape.scale[c][d], shape.shift[c][d]);
            assert!((0.7..=1.3).contains(&sc) && sh.abs() <= 0.1, "{sc} {sh}");
        }
    }
    let jittered = Grid::new(Layout::RgbStripe, [0.8, 0.9], Some(&shape), &t, 1.0);
    assert_ne!(jittered, grids[0]);
    let none = SubpixelShape::draw(&mut rng, 0.0);
    assert_eq!(none.scale, [[1.0; 2]; 3]);
    assert_eq!(none.shift, [[0.0; 2]; 3]);
    for l in Layout::ALL {
        let (_, aps) = apertures(l, [0.8, 0.9], None);
        for c in 0..3 {
            assert!(
                aps.iter().any(|a| a.channel == c),
                "{l:?} has no channel {c}"
            );
        }
    }
}

#[test]
fn fine_pitch_and_blur_remove_the_grid_and_gain_zero_switches_it_off() {
    let stripes = |t: Transfer, gain| Grid::new(Layout::RgbStripe, [0.8, 0.9], None, &t, gain);
    let coarse = stripes(transfer(3.0, 0.5), 1.0);
    let fine = stripes(transfer(0.3, 0.8), 1.0);
    let off = stripes(transfer(3.0, 0.5), 0.0);
    assert!(coarse.peak_amplitude() > 0.1, "{}", coarse.peak_amplitude());
    assert!(fine.peak_amplitude() < 0.01, "{}", fine.peak_amplitude());
    assert!(off.harmonics.is_empty());
    assert_eq!(off.at(0, [0.3, 0.4]), 1.0);
}

#[test]
fn pwm_rows_average_to_one_and_long_exposures_flatten_the_bands() {
    let short = Pwm {
        frequency: 240.0,
        duty: 0.4,
        exposure: 1.0 / 4000.0,
        row_time: 1e-5,
        t0: 0.0,
    };
    let long = Pwm {
        exposure: 10.0 / 240.0 + 1e-4,
        ..short
    };
    let rows = 2000;
    let mean = |p: &Pwm| (0..rows).map(|r| p.row_gain(r as f64)).sum::<f64>() / rows as f64;
    let spread = |p: &Pwm| {
        let v: Vec<f64> = (0..rows).map(|r| p.row_gain(r as f64)).collect();
        v.iter().cloned().fold(f64::MIN, f64::max) - v.iter().cloned().fold(f64::MAX, f64::min)
    };
    assert!((mean(&short) - 1.0).abs() < 0.05, "{}", mean(&short));
    assert!((mean(&long) - 1.0).abs() < 0.01, "{}", mean(&long));
    assert!(spread(&short) > 1.0, "{}", spread(&short));
    assert!(spread(&long) < 0.05, "{}", spread(&long));
}

#[test]
fn tone_table_matches_the_power_curve() {
    for (g, b, w) in [(0.85f32, 0.01f32, 0.95f32), (1.2, 0.0, 1.0)] {
        let c = ToneCurve::new(g, b, w);
        for i in 0..=1000 {
            let v = i as f32 / 1000.0;
            let want = b + (w - b) * v.powf(g);
            assert!(
                (c.at(v) - want).abs() < 5e-5,
                "{g} {v}: {} vs {want}",
                c.at(v)
            );
        }
    }
}

#[test]
fn layout_names_round_trip() {
    for l in Layout::ALL {
        assert_eq!(Layout::parse(l.name()), Some(l));
    }
    assert_eq!(Layout::parse("crt"), None);
    // The default set is the first four, in the order data sets have always drawn them.
    assert_eq!(Layout::CLASSIC, Layout::ALL[..4]);
}
