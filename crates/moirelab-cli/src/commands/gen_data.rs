//! `gen-data`, and the generation a config's `data.preset` asks for when its data set is
//! missing or stale.

use crate::config::Loaded;
use crate::progress::CliReporter;
use crate::GenDataArgs;
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

pub fn gen_data(a: GenDataArgs) -> Result<ExitCode> {
    let mut cfg = moirelab_synth::GenConfig::preset(&a.preset)?;
    // --count/--size/--seed first, so a --set of the same knob wins (as it always has).
    cfg.apply(&moirelab_synth::Overrides {
        count: a.count,
        size: a.size,
        seed: a.seed,
        ..Default::default()
    })?;
    let sets = moirelab_synth::Overrides::from_sets(&a.sets).map_err(|e| match e {
        moirelab_synth::SynthError::NotKnobValue { spec } => {
            anyhow!("--set {spec}: expected knob=value")
        }
        e => anyhow::Error::new(e),
    })?;
    cfg.apply(&sets)?;
    // --twins adds them; it does not undo a --set twins=true.
    cfg.twins |= a.twins;
    cfg.validate()?;
    if a.preview {
        let out = if a.out.extension().is_some() {
            a.out.clone()
        } else {
            a.out.join("preview.png")
        };
        moirelab_synth::write_preview(&cfg, &out, 16)?;
        println!("preview: {}", out.display());
        return Ok(ExitCode::SUCCESS);
    }
    let mut donors = Vec::new();
    for d in &a.reuse {
        if !d.is_dir() {
            bail!("--reuse {}: no such folder", d.display());
        }
        match moirelab_synth::Donor::open(&cfg, d)? {
            Some(donor) => donors.push(donor),
            None => eprintln!(
                "note: --reuse {}: not a data set this generator version renders the same way \
                 (version, seed, size or a rendering knob differ); nothing reused from it",
                d.display()
            ),
        }
    }
    // Ctrl-C stops the wait for another writer or the generation between samples, so the
    // partial folder and the lock file are removed on the way out (exit 130, see main).
    let stop = super::stop_flag();
    let lock = lock_data_set(&a.out, &|m| eprintln!("{m}"), Some(&stop))?;
    let summary = generate_with_progress(&lock, &cfg, a.force, &donors, Some(&stop))?;
    for (split, labels) in &summary.counts {
        let per: Vec<String> = labels.iter().map(|(l, n)| format!("{l}={n}")).collect();
        let aligned = summary.flag_aligned.get(split).copied().unwrap_or(0);
        println!("{split:<6} {}  flag-aligned={aligned}", per.join(" "));
    }
    if summary.twins > 0 {
        println!("flag-swapped twins: {}", summary.twins);
    }
    println!("data set: {} ({} images)", a.out.display(), summary.count);
    Ok(ExitCode::SUCCESS)
}

/// The right to write the data set `out`, waiting (and saying so once through `say`) while
/// another `gen-data` or `train` writes it, until `stop` is set.
pub fn lock_data_set(
    out: &Path,
    say: &dyn Fn(&str),
    stop: Option<&AtomicBool>,
) -> Result<moirelab_synth::WriteLock> {
    let mut told = false;
    let lock = moirelab_synth::WriteLock::acquire(out, &mut |holder| {
        if !told {
            told = true;
            say(&format!(
                "waiting for {}, which is writing the data set {}",
                moirelab_core::dirlock::process_text(holder),
                out.display()
            ));
        }
        !stop.is_some_and(|s| s.load(Ordering::SeqCst))
    })?;
    Ok(lock)
}

/// Run the generator into the folder `lock` is for, with a bar (terminal) or periodic plain
/// lines, until `stop` is set ([`moirelab_synth::SynthError::Stopped`]).
pub fn generate_with_progress(
    lock: &moirelab_synth::WriteLock,
    cfg: &moirelab_synth::GenConfig,
    force: bool,
    donors: &[moirelab_synth::Donor],
    stop: Option<&AtomicBool>,
) -> Result<moirelab_synth::GenSummary> {
    use std::io::IsTerminal;
    let out = lock.out();
    let total = cfg.count as u64;
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "gen-data {bar:30.cyan/blue} {pos}/{len} [{elapsed} < {eta}] {per_sec}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let step = (total / 10).max(1);
    let progress = |done: usize, n: usize| match &bar {
        Some(b) => b.set_position(done as u64),
        None => {
            if (done as u64).is_multiple_of(step) || done == n {
                eprintln!("event=gen-data done={done}/{n}");
            }
        }
    };
    let t0 = std::time::Instant::now();
    let summary = moirelab_synth::generate_locked(lock, cfg, force, &progress, donors, stop);
    if let Err(e @ moirelab_synth::SynthError::Stopped { .. }) = summary {
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        // Kept as the library's error (it already names the data set), so that main can tell
        // an interruption from a failure.
        return Err(anyhow::Error::new(e));
    }
    let summary = summary
        .map_err(|e| match e {
            // The library's hint names its parameter; the user's knob is the flag.
            moirelab_synth::SynthError::OutputNotEmpty { path } => anyhow!(
                "{}: output folder exists and is not empty (pass --force to replace it)",
                path.display()
            ),
            e => anyhow::Error::new(e),
        })
        .with_context(|| format!("gen-data --out {}", out.display()))?;
    let secs = t0.elapsed().as_secs_f64();
    let rate = summary.count as f64 / secs.max(1e-9);
    match bar {
        Some(b) => {
            b.finish_and_clear();
            eprintln!(
                "gen-data: {} images in {secs:.1} s ({rate:.0} images/s; {} copied from \
                 an existing data set)",
                summary.count, summary.reused
            );
        }
        None => eprintln!(
            "event=gen-data-finished images={} reused={} seconds={secs:.2} \
             images-per-sec={rate:.0}",
            summary.count, summary.reused
        ),
    }
    Ok(summary)
}

/// What a config's `data.root` holds, as [`ensure_data`] judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataState {
    /// A data set train uses as it is: generated from the config's preset and knobs, or a
    /// folder of the user's own (left alone).
    Ready,
    /// Nothing there yet; train generates it from the preset.
    Missing,
    /// Made from the same preset by another generator version (this one's is given):
    /// train regenerates it.
    Stale(String),
    /// Made from the same preset with other knobs than `[data.knobs]`: train refuses it.
    OtherKnobs,
    /// Nothing there and no preset to make it from: train refuses the config.
    NoPreset,
}

/// Judge `data.root` against the config: a folder this generator made from the same preset,
/// but with another generator version (an upgrade changed the images), is stale: a stale
/// preset data set would silently give other numbers than the configs and docs promise.
/// Anything else there (your own data, a different preset, gen-data overrides) is left
/// alone, except that a config naming knobs must get a data set made with exactly those.
pub fn data_state(loaded: &Loaded) -> Result<DataState> {
    let root = &loaded.config.data.root;
    if root.exists() && !root.is_dir() {
        bail!(
            "{}: data.root = {} is a file, not a folder (a CSV/JSONL manifest goes in \
             data.manifest, with its folder as data.root)",
            loaded.path.display(),
            root.display()
        );
    }
    let meta_path = root.join(moirelab_core::dataset_format::DATASET_JSON);
    if !meta_path.is_file() {
        return Ok(match (&loaded.preset, root.is_dir()) {
            (_, true) => DataState::Ready,
            (Some(_), false) => DataState::Missing,
            (None, false) => DataState::NoPreset,
        });
    }
    let (Some(cfg), Some(p)) = (loaded.gen_config()?, &loaded.preset) else {
        return Ok(DataState::Ready);
    };
    let made =
        moirelab_core::fsio::read_json::<moirelab_core::dataset_format::DatasetMeta>(&meta_path)
            .ok()
            .and_then(|m| m.generator)
            .filter(|g| g.name == moirelab_synth::GENERATOR_NAME && &g.preset == p);
    let Some(made) = made else {
        return Ok(DataState::Ready);
    };
    if made.version != moirelab_synth::GENERATOR_VERSION {
        return Ok(DataState::Stale(made.version));
    }
    if !loaded.knobs.is_empty() && made.knobs != serde_json::to_value(cfg)? {
        return Ok(DataState::OtherKnobs);
    }
    Ok(DataState::Ready)
}

/// Make sure `data.root` exists, generating it from `data.preset` (and `[data.knobs]`) when it
/// is missing or stale ([`data_state`]). While another process writes the same folder it
/// waits (until `stop` is set), then looks again: the other one may have just made it.
pub fn ensure_data(
    loaded: &Loaded,
    reporter: Option<&CliReporter>,
    stop: Option<&AtomicBool>,
) -> Result<()> {
    let root = &loaded.config.data.root;
    let say = |msg: &str| match reporter {
        Some(r) => r.line(msg),
        None => eprintln!("{msg}"),
    };
    if write_needed(loaded)?.is_none() {
        return Ok(());
    }
    let lock = lock_data_set(root, &say, stop)?;
    let Some(force) = write_needed(loaded)? else {
        say(&format!(
            "using the data set {} that another process has just written",
            root.display()
        ));
        return Ok(());
    };
    let (Some(preset), Some(cfg)) = (&loaded.preset, loaded.gen_config()?) else {
        return Err(no_preset(loaded));
    };
    say(&format!(
        "{} data set '{preset}'{} ({} images, {} px) into {}{}",
        if force { "regenerating" } else { "generating" },
        if loaded.knobs.is_empty() {
            String::new()
        } else {
            format!(" with {}", loaded.knob_list())
        },
        cfg.count,
        cfg.sides_text(),
        root.display(),
        if force {
            format!(
                " (made by another version than {})",
                moirelab_synth::GENERATOR_VERSION
            )
        } else {
            String::new()
        }
    ));
    // Preset data sets live side by side (data/<preset>, data/<preset>_<knob>-<value>): the
    // demo's two presets, or the steps of a swept knob, differ only in rho, so most of the
    // next one's samples are already rendered in the others.
    let donors = sibling_donors(&cfg, root);
    generate_with_progress(&lock, &cfg, force, &donors, stop)?;
    Ok(())
}

/// Whether `data.root` must be written: `None` when it is ready, `Some(force)` when it is
/// missing (`false`) or stale (`true`), an error when train cannot use or make it.
fn write_needed(loaded: &Loaded) -> Result<Option<bool>> {
    Ok(match data_state(loaded)? {
        DataState::Ready => None,
        DataState::Missing => Some(false),
        DataState::Stale(_) => Some(true),
        DataState::OtherKnobs => bail!(
            "{}: data.root = {} was generated with other knobs than [data.knobs] ({}); \
             remove it or choose another data.root",
            loaded.path.display(),
            loaded.config.data.root.display(),
            loaded.knob_list()
        ),
        DataState::NoPreset => return Err(no_preset(loaded)),
    })
}

fn no_preset(loaded: &Loaded) -> anyhow::Error {
    anyhow!(
        "{}: data.root = {} does not exist (set data.preset to generate it, or run gen-data)",
        loaded.path.display(),
        loaded.config.data.root.display()
    )
}

/// Data sets next to `root` that can donate samples to `cfg` (see
/// [`moirelab_synth::Donor`]); unreadable or incompatible folders are skipped.
fn sibling_donors(cfg: &moirelab_synth::GenConfig, root: &Path) -> Vec<moirelab_synth::Donor> {
    let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && p.as_path() != root)
        .collect();
    dirs.sort();
    dirs.iter()
        .filter_map(|d| moirelab_synth::Donor::open(cfg, d).ok().flatten())
        .collect()
}
