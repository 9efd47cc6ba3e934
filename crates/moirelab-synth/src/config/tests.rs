//! Unit tests of `config/mod.rs` (kept apart so the module reads as its code).

use super::*;
use crate::display::Layout;

#[test]
fn presets_differ_where_documented() {
    let clean = GenConfig::preset("clean").unwrap();
    let flag = GenConfig::preset("flag-shortcut").unwrap();
    assert_eq!(clean.knobs.rho_flag, 0.5);
    assert_eq!(flag.knobs.rho_flag, 0.95);
    assert_eq!(flag.knobs.test_rho_flag, 0.5);
    for p in preset_names() {
        GenConfig::preset(p).unwrap().validate().unwrap();
    }
}

#[test]
fn validate_rejects_crossed_ranges() {
    let mut c = GenConfig::preset("clean").unwrap();
    c.knobs.pitch_min = 1.0;
    c.knobs.pitch_max = 0.5;
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("pitch"), "{e}");
    let mut c = GenConfig::preset("clean").unwrap();
    c.knobs.train_frac = 0.9;
    c.knobs.val_frac = 0.2;
    assert!(c.validate().unwrap_err().to_string().contains("exceeds 1"));
}

#[test]
fn camera_range_knobs_keep_old_records_and_refuse_crossed_ranges() {
    let plain = GenConfig::preset("clean").unwrap();
    let rec = serde_json::to_value(&plain).unwrap();
    for name in [
        "noise-min",
        "noise-max",
        "lens-sigma-min",
        "lens-sigma-max",
        "upload-prob",
        "upload-q-min",
        "upload-q-max",
    ] {
        assert!(rec["knobs"].get(name).is_none(), "{name} in {rec}");
    }
    assert_eq!(serde_json::from_value::<GenConfig>(rec).unwrap(), plain);
    let mut c = plain.clone();
    (c.knobs.noise_max, c.knobs.upload_prob, c.knobs.upload_q_min) = (0.01, 0.5, 40);
    let rec = serde_json::to_value(&c).unwrap();
    assert_eq!(rec["knobs"]["noise-max"], 0.01);
    assert_eq!(rec["knobs"]["upload-q-min"], 40);
    assert!(rec["knobs"].get("upload-q-max").is_none());
    assert_eq!(serde_json::from_value::<GenConfig>(rec).unwrap(), c);
    let mut c = plain.clone();
    c.knobs.noise_min = 0.02;
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("noise"), "{e}");
    let mut c = plain.clone();
    (c.knobs.lens_sigma_min, c.knobs.lens_sigma_max) = (1.0, 0.5);
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("lens-sigma"), "{e}");
    let mut c = plain.clone();
    c.knobs.lens_sigma_max = 1.6;
    let rec = serde_json::to_value(&c).unwrap();
    assert_eq!(rec["knobs"]["lens-sigma-max"], 1.6);
    assert!(rec["knobs"].get("lens-sigma-min").is_none());
    assert_eq!(serde_json::from_value::<GenConfig>(rec).unwrap(), c);
    let mut c = plain.clone();
    (c.knobs.upload_q_min, c.knobs.upload_q_max) = (90, 60);
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("upload-q"), "{e}");
    let mut c = plain;
    let e = c
        .apply(&Overrides {
            upload_q_max: Some(101),
            ..Overrides::default()
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("upload-q-max") && e.contains("[10, 100]"), "{e}");
}

#[test]
fn optional_knobs_are_absent_from_the_record_until_set() {
    // Data sets made before these knobs existed record configs without them; at 0 the
    // serialized config is theirs, and a record without them reads back as 0.
    type Field = fn(&mut Knobs) -> &mut f64;
    let knobs: [(&str, Field); 6] = [
        ("hologram-prob", |k| &mut k.hologram_prob),
        ("design-variety", |k| &mut k.design_variety),
        ("cue-dropout", |k| &mut k.cue_dropout),
        ("defocus-prob", |k| &mut k.defocus_prob),
        ("jpeg-420-prob", |k| &mut k.jpeg_420_prob),
        ("subpixel-jitter", |k| &mut k.subpixel_jitter),
    ];
    for (name, field) in knobs {
        let mut c = GenConfig::preset("clean").unwrap();
        let plain = serde_json::to_value(&c).unwrap();
        assert!(plain["knobs"].get(name).is_none(), "{plain}");
        assert_eq!(serde_json::from_value::<GenConfig>(plain).unwrap(), c);
        *field(&mut c.knobs) = 0.6;
        let set = serde_json::to_value(&c).unwrap();
        assert_eq!(set["knobs"][name], 0.6);
        assert_eq!(serde_json::from_value::<GenConfig>(set).unwrap(), c);
        *field(&mut c.knobs) = 1.5;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains(name), "{e}");
    }
}

#[test]
fn layouts_keep_old_records_and_a_held_out_layout_must_be_drawn() {
    // The classic four are the default and are left out of the record, so data sets made
    // before the knob existed keep matching their configs.
    let plain = GenConfig::preset("clean").unwrap();
    assert_eq!(plain.knobs.layouts, Layout::CLASSIC);
    let rec = serde_json::to_value(&plain).unwrap();
    assert!(rec["knobs"].get("layouts").is_none(), "{rec}");
    assert_eq!(serde_json::from_value::<GenConfig>(rec).unwrap(), plain);
    let mut c = plain.clone();
    c.knobs.layouts = Layout::ALL.to_vec();
    let rec = serde_json::to_value(&c).unwrap();
    assert_eq!(rec["knobs"]["layouts"][4], "delta");
    assert_eq!(rec["knobs"]["layouts"][5], "s-stripe");
    assert_eq!(serde_json::from_value::<GenConfig>(rec).unwrap(), c);
    c.knobs.holdout = Holdout::Layout(Layout::Diamond);
    c.validate().unwrap();
    let mut c = plain.clone();
    c.knobs.holdout = Holdout::Layout(Layout::Delta);
    let e = c.validate().unwrap_err().to_string();
    assert!(
        e.contains("holdout") && e.contains("`delta` is not among the drawn layouts"),
        "{e}"
    );
    c.knobs.layouts = vec![Layout::Delta];
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("leaves no layout to train on"), "{e}");
    // A hand-built config: none, or out of order (the draw depends on the order).
    for bad in [vec![], vec![Layout::Pentile, Layout::RgbStripe]] {
        let mut c = plain.clone();
        c.knobs.layouts = bad;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("layouts"), "{e}");
    }
}
