use crate::tiny;
use moirelab_synth::{generate, GenConfig, Overrides, SynthError};

/// Apply one `knob=value` override as `gen-data --set` does.
fn set(c: &mut GenConfig, kv: &str) -> Result<(), SynthError> {
    c.apply(&Overrides::from_sets(&[kv])?)
}

#[test]
fn unknown_preset_error_lists_the_presets() {
    let e = GenConfig::preset("flagshortcut").unwrap_err();
    assert!(matches!(e, SynthError::UnknownPreset { .. }));
    let msg = e.to_string();
    assert!(msg.contains("flagshortcut") && msg.contains("flag-shortcut") && msg.contains("clean"));
}

#[test]
fn unknown_knob_error_names_the_knob_and_lists_valid_ones() {
    let mut c = tiny(4);
    let msg = set(&mut c, "rho_flag=0.9").unwrap_err().to_string();
    assert!(
        msg.contains("`rho_flag`") && msg.contains("rho-flag"),
        "{msg}"
    );
}

#[test]
fn rho_outside_unit_interval_is_out_of_range() {
    let mut c = tiny(4);
    for v in ["1.5", "-0.1", "NaN", "nan", "inf"] {
        let e = set(&mut c, &format!("rho-flag={v}")).unwrap_err();
        assert!(matches!(e, SynthError::OutOfRange { .. }), "{v}: {e}");
        assert!(e.to_string().contains("rho-flag"));
    }
    let e = set(&mut c, "test-rho-flag=abc").unwrap_err();
    assert!(matches!(e, SynthError::BadValue { .. }), "{e}");
    assert_eq!(
        c.knobs.rho_flag, 0.5,
        "a rejected value must not be applied"
    );
}

#[test]
fn zero_count_and_size_are_rejected_by_apply_and_validate() {
    let mut c = tiny(4);
    assert!(set(&mut c, "count=0")
        .unwrap_err()
        .to_string()
        .contains("count"));
    assert!(set(&mut c, "size=0")
        .unwrap_err()
        .to_string()
        .contains("size"));
    c.count = 0;
    assert!(c.validate().unwrap_err().to_string().contains("count"));
    let mut c = tiny(4);
    c.size = 32;
    assert!(c.validate().unwrap_err().to_string().contains("size"));
    c.knobs.rho_face = 2.0;
    c.size = 64;
    assert!(c.validate().unwrap_err().to_string().contains("rho-face"));
}

#[test]
fn invalid_config_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("set");
    let mut c = tiny(4);
    c.count = 0;
    assert!(generate(&c, &out, false, &|_, _| {}).is_err());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn non_empty_output_folder_is_refused_without_force_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("set");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("precious.txt"), b"keep").unwrap();
    let e = generate(&tiny(4), &out, false, &|_, _| {}).unwrap_err();
    assert!(matches!(e, SynthError::OutputNotEmpty { .. }), "{e}");
    assert!(e.to_string().contains("set"));
    let names: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("precious.txt")]);
    // No temp sibling is left behind either.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn sample_index_past_count_is_an_error() {
    let e = moirelab_synth::render_sample(&tiny(4), 4).unwrap_err();
    assert!(
        matches!(e, SynthError::IndexOutOfRange { index: 4, count: 4 }),
        "{e}"
    );
}
