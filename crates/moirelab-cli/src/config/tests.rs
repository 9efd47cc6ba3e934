//! Unit tests of `config.rs` (kept apart so the module reads as its code).

use super::*;

const MIN: &str = "[data]\nroot = \"d\"\n[train]\nepochs = 2\n";

/// Every config the repository ships loads, builds its model and names CAM layers that
/// model has: a typo in one fails here, not for the user who copies it.
#[test]
fn shipped_configs_load_and_build() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let loaded = load(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let net = moirelab_models::build(&vs.root(), &loaded.config.model)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let layers: Vec<&str> = loaded
            .config
            .gradcam
            .layers
            .iter()
            .map(|s| s.as_str())
            .collect();
        moirelab_models::check_layers(net.as_ref(), &layers)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        names.push(path.file_stem().unwrap().to_string_lossy().into_owned());
    }
    names.sort();
    for want in ["deep", "face", "fixed", "shallow", "tiny", "transfer"] {
        assert!(
            names.iter().any(|n| n == want),
            "configs/{want}.toml missing: {names:?}"
        );
    }
}

#[test]
fn unknown_key_names_file_line_section_and_key() {
    let text = "[data]\nroot = \"d\"\n[train]\nepochs = 2\nlearning-rate = 0.1\n";
    let e = load_str(Path::new("c.toml"), text, &[])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("c.toml:5: in [train]:"), "{e}");
    assert!(e.contains("learning-rate"), "{e}");
    assert!(!e.contains('\n'), "{e}");
}

#[test]
fn errors_in_every_section_name_the_users_line_even_with_a_preset() {
    // (text, expected line, needle)
    let cases = [
        (
            "[data]\npreset = \"tiny\"\n[train]\nepoch = 2\n",
            4,
            "epoch",
        ),
        (
            "[data]\npreset = \"tiny\"\n\n[model]\nwidht = 8\n",
            5,
            "widht",
        ),
        (
            "[data]\npreset = \"tiny\"  # c\n[gradcam]\nevery = 1\nlayerz = []\n",
            5,
            "layerz",
        ),
        (
            "[data]\npreset = \"tiny\"\n[report]\n\nevery-epoch = 3\n",
            5,
            "every-epoch",
        ),
        (
            "[data]\nimage-size = 64\npreset = \"tiny\"\nbogus = 1\n",
            4,
            "bogus",
        ),
        (
            "[data]\nroot = \"d\"\n[train]\nepochs = 2\nlr = -1.0\n",
            5,
            "train.lr",
        ),
        (
            "[data]\npreset = \"tiny\"\n[train]\nlr = 50.0\n",
            4,
            "train.lr",
        ),
        (
            "[data]\nroot = \"d\"\n\n[data.augment]\nhflip = 3.0\n",
            5,
            "augment.hflip",
        ),
        ("[data]\nroot = \"d\"\nimage-size = 4\n", 3, "image-size"),
    ];
    for (text, line, needle) in cases {
        let e = load_str(Path::new("c.toml"), text, &[])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(&format!("c.toml:{line}: ")), "{text:?}: {e}");
        assert!(e.contains(needle), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}

/// A seeded corpus of damaged config files: every one loads or fails with one line
/// naming the file, never panics.
#[test]
fn damaged_configs_load_or_fail_with_one_line() {
    const CASES: usize = 400;
    let base = "name = \"x\"\n[data]\npreset = \"tiny\"\nimage-size = 64\ncache = \"memory\"\n\
                    on-bad-image = \"skip\"\n[data.augment]\nhflip = 0.5\n[model]\narch = \"shallow\"\n\
                    width = 4\n[train]\nepochs = 2\nbatch-size = 8\nlr = 0.001\nseed = 3\n\
                    [gradcam]\nmethods = [\"gradcam\"]\nprobes = 4\n[report]\ntensorboard = false\n";
    let tokens = [
        "=",
        "[",
        "]",
        "\"",
        "\n",
        "#",
        "-1",
        "1e309",
        "nan",
        "inf",
        "\"\"",
        "[[x]]",
        "{",
        "}",
        ".",
        "\0",
        "é",
        "99999999999999999999",
        "true",
        "[data]",
        "[train]",
        "root = 1",
        "preset = 5",
        "data.preset = \"nope\"",
        "\\u0000",
    ];
    let mut z = 0x00c0_ffeeu64;
    let mut next = move || {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut x = z;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (x ^ (x >> 31)) as usize
    };
    let (mut ok, mut err) = (0, 0);
    for k in 0..CASES {
        let mut text = base.to_string();
        for _ in 0..1 + next() % 3 {
            let mut at = next() % (text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            match next() % 5 {
                0 => text.insert_str(at, tokens[next() % tokens.len()]),
                1 => {
                    let mut end = (at + 1 + next() % 12).min(text.len());
                    while !text.is_char_boundary(end) {
                        end += 1;
                    }
                    text.replace_range(at..end, "");
                }
                2 => text.truncate(at),
                3 => {
                    // a value replaced by a token
                    let lines: Vec<&str> = text.lines().collect();
                    let i = next() % lines.len().max(1);
                    let mut v: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
                    if let Some(l) = v.get_mut(i) {
                        if let Some((key, _)) = l.clone().split_once('=') {
                            *l = format!("{key}= {}", tokens[next() % tokens.len()]);
                        }
                    }
                    text = v.join("\n");
                }
                _ => {
                    let lines: Vec<&str> = text.lines().collect();
                    let i = next() % lines.len().max(1);
                    let dup = lines.get(i).copied().unwrap_or("").to_string();
                    text = format!("{text}\n{dup}\n");
                }
            }
        }
        let sets: Vec<String> = if k % 5 == 0 {
            vec![format!("train.{}=1", ["lr", "epochs", "nope"][next() % 3])]
        } else {
            Vec::new()
        };
        let out = std::panic::catch_unwind(|| load_str(Path::new("c.toml"), &text, &sets));
        match out {
            Err(_) => panic!("case {k} panicked on:\n{text}"),
            Ok(Ok(_)) => ok += 1,
            Ok(Err(e)) => {
                let e = e.to_string();
                assert!(
                    e.starts_with("c.toml") || e.starts_with("--set"),
                    "case {k}: {e}"
                );
                assert!(!e.contains('\n'), "case {k}: {e}");
                err += 1;
            }
        }
    }
    eprintln!("config corpus: {CASES} cases, {ok} loaded, {err} one-line errors");
    assert_eq!(ok + err, CASES);
    assert!(
        err > CASES / 2,
        "the damage must mostly be caught: {ok} ok, {err} errors"
    );
}

#[test]
fn syntax_error_is_one_line_with_position() {
    let e = load_str(Path::new("c.toml"), "[data\nroot=1", &[])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("c.toml:1:"), "{e}");
    assert!(!e.contains('\n'), "{e}");
}

#[test]
fn set_overrides_parse_as_toml_or_string() {
    let l = load_str(
        Path::new("c.toml"),
        MIN,
        &[
            "train.lr=3e-4".into(),
            "model.arch=shallow".into(),
            "train.epochs=5".into(),
        ],
    )
    .unwrap();
    assert_eq!(l.config.train.lr, 3e-4);
    assert_eq!(l.config.train.epochs, 5);
    let e = load_str(Path::new("c.toml"), MIN, &["train.nope=1".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope"), "{e}");
    let e = load_str(Path::new("c.toml"), MIN, &["train.epochs=\"x\"".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("epochs") || e.contains("integer"), "{e}");
}

#[test]
fn out_of_range_values_name_the_key() {
    let e = load_str(Path::new("c.toml"), MIN, &["train.lr=-1".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("train.lr"), "{e}");
}

#[test]
fn preset_gives_a_default_root_and_unknown_presets_are_listed() {
    let l = load_str(Path::new("c.toml"), "[data]\npreset = \"tiny\"\n", &[]).unwrap();
    assert_eq!(l.preset.as_deref(), Some("tiny"));
    assert_eq!(l.config.data.root, PathBuf::from("data/tiny"));
    let e = load_str(Path::new("c.toml"), "[data]\npreset = \"nope\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("flag-shortcut"), "{e}");
}

#[test]
fn knobs_override_the_preset_and_get_their_own_default_root() {
    let text = "[data]\npreset = \"flag-shortcut\"\n[data.knobs]\nrho-flag = 0.75\ncount = 800\n";
    let l = load_str(Path::new("c.toml"), text, &[]).unwrap();
    assert_eq!(
        l.config.data.root,
        PathBuf::from("data/flag-shortcut_count-800_rho-flag-0.75")
    );
    let g = l.gen_config().unwrap().unwrap();
    assert_eq!((g.knobs.rho_flag, g.count), (0.75, 800));
    assert!(
        l.resolved.contains("count=800 rho-flag=0.75"),
        "{}",
        l.resolved
    );
    // Through --set; the preset's own value keeps the preset's folder.
    let base = "[data]\npreset = \"flag-shortcut\"\n";
    let l = load_str(
        Path::new("c.toml"),
        base,
        &["data.knobs.rho-flag=0.95".into()],
    )
    .unwrap();
    assert_eq!(l.config.data.root, PathBuf::from("data/flag-shortcut"));
    assert_eq!(l.knob_list(), "rho-flag=0.95");
    let err = load_err;
    let e = err(base, &["data.knobs.nope=1"]);
    assert!(
        e.contains("data.knobs.nope") && e.contains("rho-flag"),
        "{e}"
    );
    let e = err(base, &["data.knobs.rho-flag=1.5"]);
    assert!(
        e.contains("data.knobs.rho-flag") && e.contains("range"),
        "{e}"
    );
    let e = err(base, &["data.knobs.size=64"]);
    assert!(e.contains("image-size") && e.contains("patch"), "{e}");
    let e = err("[data]\nroot = \"d\"\n[data.knobs]\nrho-flag = 0.5\n", &[]);
    assert!(e.contains("data.preset"), "{e}");
}

/// The one-line error of loading `text` with `--set` overrides `sets`.
fn load_err(text: &str, sets: &[&str]) -> String {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    load_str(Path::new("c.toml"), text, &sets)
        .unwrap_err()
        .to_string()
}

#[test]
fn patch_mode_generates_photos_larger_than_its_crops() {
    let text = "[data]\npreset = \"tiny\"\nimage-size = 64\nmode = \"patch\"\n\
                    [data.knobs]\nsize = 128\n";
    let l = load_str(Path::new("c.toml"), text, &[]).unwrap();
    assert_eq!(l.gen_config().unwrap().unwrap().size, 128);
    assert_eq!(l.config.data.image_size, 64);
    assert_eq!(l.config.data.root, PathBuf::from("data/tiny_size-128"));
    let err = |sets: &[&str]| load_err(text, sets);
    // Within the generator's range, below the crops.
    let e = err(&["data.knobs.size=96", "data.image-size=128"]);
    assert!(
        e.contains("data.knobs.size") && e.contains("96-px photo") && e.contains("128-px"),
        "{e}"
    );
    let e = err(&["data.knobs.size=\"big\""]);
    assert!(e.contains("data.knobs.size") && e.contains("big"), "{e}");
    let e = err(&["data.mode=\"pach\""]);
    assert!(e.contains("pach") && !e.contains("resize mode"), "{e}");
    let e = err(&["data.mode=\"resize\""]);
    assert!(
        e.contains("data.knobs.size") && e.contains("resize mode"),
        "{e}"
    );
}

#[test]
fn patch_mode_generates_photos_of_several_sizes() {
    let text = "[data]\npreset = \"tiny\"\nimage-size = 64\nmode = \"patch\"\n\
                    [data.knobs]\nsizes = [128, 64]\n";
    let l = load_str(Path::new("c.toml"), text, &[]).unwrap();
    let g = l.gen_config().unwrap().unwrap();
    assert_eq!((g.size, g.sizes.as_deref()), (128, Some(&[64, 128][..])));
    assert_eq!(g.min_photo_size(), 64);
    assert_eq!(l.config.data.root, PathBuf::from("data/tiny_sizes-128_64"));
    let err = |sets: &[&str]| load_err(text, sets);
    let e = err(&["data.image-size=96"]);
    assert!(
        e.contains("data.knobs.sizes") && e.contains("64-px photo") && e.contains("96-px"),
        "{e}"
    );
    let e = err(&["data.mode=\"resize\""]);
    assert!(
        e.contains("data.knobs.sizes") && e.contains("resize mode"),
        "{e}"
    );
    let e = err(&["data.knobs.size=128"]);
    assert!(e.contains("not both"), "{e}");
    let e = err(&["data.knobs.sizes=[64, 9999]"]);
    assert!(e.contains("sizes") && e.contains("9999"), "{e}");
    let e = err(&["data.knobs.sizes=\"64,big\""]);
    assert!(e.contains("sizes") && e.contains("64,big"), "{e}");
}
