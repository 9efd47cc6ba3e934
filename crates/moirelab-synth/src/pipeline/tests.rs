//! Unit tests of `pipeline.rs` (kept apart so the module reads as its code).

use super::*;
use crate::config::{Holdout, Knobs, DEFOCUS};
use crate::display::Layout;
use crate::draws::tests::spec;

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
fn holograms_come_with_both_classes_and_leave_the_masks_alone() {
    let cfg = GenConfig::preset("tiny").unwrap();
    let mut with = cfg.clone();
    with.knobs.hologram_prob = 1.0;
    for i in 0..6 {
        for screen in [false, true] {
            let plain = render(&cfg, &spec(i, screen), false, true).unwrap();
            let foil = render(&with, &spec(i, screen), false, true).unwrap();
            assert!(plain.params["card"].get("hologram").is_none());
            assert!(foil.params["card"]["hologram"].is_string(), "sample {i}");
            // The same card, scene and camera, with a foil on top: the regions are the
            // same, the pixels are not.
            assert!(plain.bits == foil.bits, "sample {i}, screen {screen}");
            assert!(plain.rgb8 != foil.rgb8, "sample {i}, screen {screen}");
        }
    }
}

#[test]
fn designs_come_with_both_classes_and_change_only_the_card_and_desk() {
    let cfg = GenConfig::preset("tiny").unwrap();
    let mut with = cfg.clone();
    with.knobs.design_variety = 1.0;
    let flag = region_bit("flag");
    let mut mirrored = 0;
    for i in 0..8 {
        let mut designs = Vec::new();
        for screen in [false, true] {
            let plain = render(&cfg, &spec(i, screen), false, true).unwrap();
            let varied = render(&with, &spec(i, screen), false, true).unwrap();
            assert!(plain.params["card"].get("design").is_none());
            let d = varied.params["card"]["design"].clone();
            assert!(d["title"].is_string(), "sample {i}: {d}");
            // The display and the camera are drawn from their own streams: untouched.
            assert_eq!(
                plain.params["camera"], varied.params["camera"],
                "sample {i}"
            );
            assert_eq!(
                plain.params["screen"], varied.params["screen"],
                "sample {i}"
            );
            assert!(plain.rgb8 != varied.rgb8, "sample {i}, screen {screen}");
            // A mirrored design has its flag in the left half of the card.
            let xs: Vec<usize> = (0..varied.bits.len())
                .filter(|&k| varied.bits[k] & flag != 0)
                .map(|k| k % with.size as usize)
                .collect();
            assert!(!xs.is_empty(), "sample {i}: no flag pixels");
            let mean_x = xs.iter().sum::<usize>() as f64 / xs.len() as f64;
            let left = mean_x < with.size as f64 / 2.0;
            assert_eq!(
                left,
                d["mirrored"] == true,
                "sample {i}: flag at x {mean_x}"
            );
            mirrored += usize::from(left);
            designs.push(d);
        }
        // Both classes of one index draw the same design.
        assert_eq!(designs[0], designs[1], "sample {i}");
    }
    assert!(mirrored > 0 && mirrored < 16, "{mirrored} of 16 mirrored");
}

#[test]
fn the_off_axis_view_changes_recaptures_only() {
    let cfg = GenConfig::preset("tiny").unwrap();
    let mut with = cfg.clone();
    with.knobs.artifacts.push(Artifact::Angle);
    for i in 0..6 {
        let direct = |c: &GenConfig| render(c, &spec(i, false), false, true).unwrap();
        assert!(direct(&cfg).rgb8 == direct(&with).rgb8, "direct {i}");
        let screen = |c: &GenConfig| render(c, &spec(i, true), false, true).unwrap();
        let (plain, viewed) = (screen(&cfg), screen(&with));
        assert!(plain.rgb8 != viewed.rgb8, "screen {i}");
        assert!(plain.params["screen"].get("panel").is_none());
        assert!(viewed.params["screen"]["panel"].is_string());
    }
}

#[test]
fn cue_dropout_thins_train_recaptures_only() {
    let cfg = GenConfig::preset("tiny").unwrap();
    let mut with = cfg.clone();
    with.knobs.cue_dropout = 0.5;
    let test = |i| SampleSpec {
        test: true,
        ..spec(i, true)
    };
    let (mut thinned, mut changed) = (0, 0);
    for i in 0..12 {
        // Direct captures and test recaptures are the same images, byte for byte.
        for s in [spec(i, false), test(i)] {
            let (a, b) = (
                render(&cfg, &s, false, true),
                render(&with, &s, false, true),
            );
            let (a, b) = (a.unwrap(), b.unwrap());
            assert!(a.rgb8 == b.rgb8 && a.bits == b.bits, "sample {i}");
        }
        let r = render(&with, &spec(i, true), false, true).unwrap();
        let shown = r.params["screen"]["effects"].as_array().unwrap().len();
        thinned += usize::from(shown < cfg.knobs.artifacts.len());
        // Losing the bands of a flicker-free panel changes nothing.
        changed += usize::from(r.rgb8 != render(&cfg, &spec(i, true), false, true).unwrap().rgb8);
    }
    assert!(
        thinned >= 6,
        "{thinned} of 12 train recaptures lost an effect"
    );
    assert!(
        changed >= 4 && changed <= thinned,
        "{changed} changed, {thinned} thinned"
    );
    assert!(
        render(&cfg, &spec(0, true), false, false).unwrap().params["screen"]
            .get("effects")
            .is_none()
    );
}

#[test]
fn defocus_softens_both_classes_and_is_recorded() {
    let cfg = GenConfig::preset("tiny").unwrap();
    let mut with = cfg.clone();
    with.knobs.defocus_prob = 1.0;
    // Mean squared difference of horizontal neighbours: the image's fine detail.
    let detail = |r: &Rendered| {
        let w = cfg.size as usize * 3;
        let d: f64 = r
            .rgb8
            .chunks_exact(w)
            .flat_map(|row| row.windows(4).map(|p| (p[3] as f64 - p[0] as f64).powi(2)))
            .sum();
        d / r.rgb8.len() as f64
    };
    for i in 0..6 {
        for screen in [false, true] {
            let (a, b) = (
                render(&cfg, &spec(i, screen), false, true).unwrap(),
                render(&with, &spec(i, screen), false, true).unwrap(),
            );
            assert!(a.params["camera"].get("defocus-px").is_none());
            let sigma = b.params["camera"]["defocus-px"].as_f64().unwrap();
            assert!((DEFOCUS.0..=DEFOCUS.1).contains(&sigma), "{sigma}");
            // The same card, scene and camera, out of focus; on a screen the blur also
            // washes out the grid, and with it the moiré mask.
            let mb = region_bit("moire");
            let area = |r: &Rendered| r.bits.iter().filter(|&&x| x & mb != 0).count();
            let strip = |r: &Rendered| r.bits.iter().map(|&x| x & !mb).collect::<Vec<_>>();
            assert!(strip(&a) == strip(&b), "sample {i}, screen {screen}");
            assert!(area(&b) <= area(&a), "sample {i}");
            assert!(
                detail(&b) < (1.0 - 0.3 * sigma) * detail(&a),
                "sample {i}, screen {screen}: {} vs {}",
                detail(&b),
                detail(&a)
            );
        }
    }
    // A share of the photos, drawn on their own stream: the others are unchanged.
    with.knobs.defocus_prob = 0.5;
    let mut soft = 0;
    for i in 0..40 {
        let (a, b) = (
            render(&cfg, &spec(i, i % 2 == 0), false, false).unwrap(),
            render(&with, &spec(i, i % 2 == 0), false, false).unwrap(),
        );
        if b.params["camera"]["defocus-px"].is_null() {
            assert!(a.rgb8 == b.rgb8, "sample {i}");
        } else {
            soft += 1;
        }
    }
    assert!((10..=30).contains(&soft), "{soft} of 40 defocused");
}

#[test]
fn jpeg_420_subsamples_the_chroma_of_both_classes_and_leaves_the_masks() {
    let mut cfg = GenConfig::preset("tiny").unwrap();
    cfg.knobs.upload_prob = 1.0;
    let mut with = cfg.clone();
    with.knobs.jpeg_420_prob = 1.0;
    // Mean squared difference of each pixel's colour from its right neighbour's, in the
    // chroma of the output (R − G and B − G): what 4:2:0 averages.
    let colour_detail = |r: &Rendered| {
        let px: Vec<[f64; 2]> = r
            .rgb8
            .chunks_exact(3)
            .map(|p| {
                let g = f64::from(p[1]);
                [f64::from(p[0]) - g, f64::from(p[2]) - g]
            })
            .collect();
        let d: f64 = px
            .windows(2)
            .map(|w| (w[1][0] - w[0][0]).powi(2) + (w[1][1] - w[0][1]).powi(2))
            .sum();
        d / px.len() as f64
    };
    let (mut before, mut after) = (0.0, 0.0);
    for i in 0..6 {
        for screen in [false, true] {
            let (a, b) = (
                render(&cfg, &spec(i, screen), false, true).unwrap(),
                render(&with, &spec(i, screen), false, true).unwrap(),
            );
            assert!(a.params["camera"].get("jpeg-chroma").is_none());
            assert_eq!(b.params["camera"]["jpeg-chroma"], "4:2:0", "sample {i}");
            assert_eq!(b.params["camera"]["upload-chroma"], "4:2:0", "sample {i}");
            // The same photo through other JPEGs: the masks and every other parameter stay.
            assert!(a.bits == b.bits, "sample {i}, screen {screen}");
            assert!(a.rgb8 != b.rgb8, "sample {i}, screen {screen}");
            before += colour_detail(&a);
            after += colour_detail(&b);
        }
    }
    assert!(
        after < 0.8 * before,
        "colour detail {after:.1} vs {before:.1}"
    );
    // A share of the JPEGs, drawn on their own stream, each recorded.
    with.knobs.jpeg_420_prob = 0.5;
    let mut half = 0;
    for i in 0..40 {
        let (a, b) = (
            render(&cfg, &spec(i, i % 2 == 0), false, false).unwrap(),
            render(&with, &spec(i, i % 2 == 0), false, false).unwrap(),
        );
        let cam = &b.params["camera"];
        let n = [&cam["jpeg-chroma"], &cam["upload-chroma"]]
            .iter()
            .filter(|v| **v == "4:2:0")
            .count();
        if n == 0 {
            assert!(a.rgb8 == b.rgb8, "sample {i}");
        }
        half += n;
    }
    assert!((20..=60).contains(&half), "{half} of 80 JPEGs at 4:2:0");
}

#[test]
fn camera_knobs_set_the_noise_and_the_upload_of_both_classes() {
    let mut cfg = GenConfig::preset("tiny").unwrap();
    (cfg.knobs.noise_min, cfg.knobs.noise_max) = (0.02, 0.02);
    (
        cfg.knobs.upload_prob,
        cfg.knobs.upload_q_min,
        cfg.knobs.upload_q_max,
    ) = (1.0, 40, 40);
    for i in 0..6 {
        for screen in [false, true] {
            let r = render(&cfg, &spec(i, screen), false, false).unwrap();
            assert_eq!(r.params["camera"]["noise-a"], 0.02, "sample {i}");
            assert_eq!(r.params["camera"]["upload-jpeg-q"], 40, "sample {i}");
        }
    }
}

#[test]
fn lens_knobs_set_the_blur_of_both_classes() {
    let mut sharp = GenConfig::preset("tiny").unwrap();
    (sharp.knobs.lens_sigma_min, sharp.knobs.lens_sigma_max) = (0.3, 0.3);
    let mut soft = sharp.clone();
    (soft.knobs.lens_sigma_min, soft.knobs.lens_sigma_max) = (1.5, 1.5);
    let n = sharp.size as usize;
    // Squared differences between horizontal neighbours: the image's fine detail.
    let detail = |r: &Rendered| -> f64 {
        r.rgb8
            .chunks(3 * n)
            .flat_map(|row| {
                row.windows(6)
                    .map(|w| (f64::from(w[3]) - f64::from(w[0])).powi(2))
            })
            .sum()
    };
    for i in 0..4 {
        for screen in [false, true] {
            let a = render(&sharp, &spec(i, screen), false, false).unwrap();
            let b = render(&soft, &spec(i, screen), false, false).unwrap();
            assert_eq!(a.params["camera"]["lens-sigma-px"], 0.3, "sample {i}");
            assert_eq!(b.params["camera"]["lens-sigma-px"], 1.5, "sample {i}");
            assert!(
                detail(&b) < 0.8 * detail(&a),
                "sample {i}, screen {screen}: {} vs {}",
                detail(&b),
                detail(&a)
            );
        }
    }
}

#[test]
fn held_out_layout_appears_only_in_test() {
    // A classic layout, and one that only `layouts` brings in.
    let mut wide = GenConfig::preset("tiny").unwrap();
    wide.knobs.layouts = Layout::ALL.to_vec();
    for (base, held) in [
        (GenConfig::preset("tiny").unwrap(), Layout::Pentile),
        (wide, Layout::Diamond),
    ] {
        let cfg = GenConfig {
            knobs: Knobs {
                holdout: Holdout::Layout(held),
                ..base.knobs
            },
            ..base
        };
        for i in 0..40 {
            let train = render(&cfg, &spec(i, true), false, false).unwrap();
            assert_ne!(train.params["screen"]["layout"], held.name(), "sample {i}");
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
            assert_eq!(test.params["screen"]["layout"], held.name(), "sample {i}");
        }
    }
}

#[test]
fn listed_layouts_are_all_drawn_and_a_panel_shape_is_recorded() {
    let mut cfg = GenConfig::preset("tiny").unwrap();
    cfg.knobs.layouts = Layout::ALL.to_vec();
    cfg.knobs.subpixel_jitter = 1.0;
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..80 {
        let s = render(&cfg, &spec(i, true), false, false).unwrap();
        let screen = &s.params["screen"];
        seen.insert(screen["layout"].as_str().unwrap().to_string());
        let scale = screen["subpixel-scale"].as_array().unwrap();
        assert_eq!(scale.len(), 3, "sample {i}");
        for v in scale.iter().flat_map(|c| c.as_array().unwrap()) {
            assert!(
                (0.7..=1.3).contains(&v.as_f64().unwrap()),
                "sample {i}: {v}"
            );
        }
        assert_eq!(screen["subpixel-shift"].as_array().unwrap().len(), 3);
    }
    let all: std::collections::BTreeSet<String> =
        Layout::ALL.iter().map(|l| l.name().to_string()).collect();
    assert_eq!(seen, all);
    // The default draws the classic four and records no shape.
    let plain = GenConfig::preset("tiny").unwrap();
    for i in 0..20 {
        let s = render(&plain, &spec(i, true), false, false).unwrap();
        let layout = Layout::parse(s.params["screen"]["layout"].as_str().unwrap()).unwrap();
        assert!(Layout::CLASSIC.contains(&layout), "sample {i}: {layout:?}");
        assert!(s.params["screen"].get("subpixel-scale").is_none());
    }
}
