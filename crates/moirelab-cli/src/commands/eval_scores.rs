//! `eval --scores FILE`: every evaluated image's attack score and decision, one line per image
//! and table row, for the analyses a table cannot hold: a ROC curve in the user's own tools,
//! the list of genuine photos rejected, a join with their own metadata. CSV or JSONL, by the
//! file's extension; written once, through a temp file and a rename, after every row is scored.

use anyhow::{bail, Context, Result};
use moirelab_data::Dataset;
use std::path::{Path, PathBuf};

/// The columns, in order (the CSV header and the JSONL keys).
const COLUMNS: [&str; 8] = [
    "data",
    "perturbation",
    "path",
    "label",
    "score",
    "threshold",
    "decision",
    "correct",
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    Csv,
    Jsonl,
}

/// One image of one row.
#[derive(serde::Serialize)]
struct ScoreLine {
    data: String,
    /// `kind=value` of `--perturb`; null on the unperturbed row.
    perturbation: Option<String>,
    /// As the data set names it: relative to its root or manifest.
    path: String,
    label: String,
    /// P(attack class).
    score: f64,
    /// The row's threshold; null where there is none (a set of one class evaluated as the
    /// run's own val split).
    threshold: Option<f64>,
    /// The class decided at the threshold (`commands::decision`, as `predict` names it).
    decision: Option<String>,
    correct: Option<bool>,
}

/// The per-image lines of an `eval`, gathered row by row.
pub struct Scores {
    path: PathBuf,
    format: Format,
    lines: Vec<ScoreLine>,
}

impl Scores {
    /// Checks the file name before anything is loaded: its extension is the format.
    pub fn new(path: &Path) -> Result<Scores> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let format = match ext.as_deref() {
            Some("csv") => Format::Csv,
            Some("jsonl") => Format::Jsonl,
            _ => bail!(
                "--scores {}: the file name must end in .csv or .jsonl (its format)",
                path.display()
            ),
        };
        if path.is_dir() {
            bail!("--scores {}: a folder; give a file name", path.display());
        }
        Ok(Scores {
            path: path.to_path_buf(),
            format,
            lines: Vec::new(),
        })
    }

    /// One row's images: `scores[k]` is image `idx[k]`'s attack score, decided at
    /// `threshold`.
    pub fn add_row(
        &mut self,
        data: &str,
        perturbation: Option<String>,
        ds: &Dataset,
        idx: &[usize],
        scores: &[f64],
        threshold: Option<f64>,
    ) {
        let (classes, attack) = (ds.classes(), ds.attack_index());
        for (&i, &score) in idx.iter().zip(scores) {
            let flagged = threshold.map(|t| score >= t);
            self.lines.push(ScoreLine {
                data: data.to_string(),
                perturbation: perturbation.clone(),
                path: ds.record(i).path.clone(),
                label: classes[ds.label(i)].clone(),
                score,
                threshold,
                decision: flagged.map(|f| super::decision(classes, attack, f)),
                correct: flagged.map(|f| f == (ds.label(i) == attack)),
            });
        }
    }

    /// The file it writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the file; returns how many images it holds.
    pub fn write(&self) -> Result<usize> {
        let mut out = String::new();
        match self.format {
            Format::Csv => {
                out.push_str(&moirelab_core::csv::line(&COLUMNS));
                out.push('\n');
                let text = |v: Option<String>| v.unwrap_or_default();
                for l in &self.lines {
                    out.push_str(&moirelab_core::csv::line(&[
                        &l.data,
                        l.perturbation.as_deref().unwrap_or(""),
                        &l.path,
                        &l.label,
                        &l.score.to_string(),
                        &text(l.threshold.map(|t| t.to_string())),
                        l.decision.as_deref().unwrap_or(""),
                        &text(l.correct.map(|c| c.to_string())),
                    ]));
                    out.push('\n');
                }
            }
            Format::Jsonl => {
                for l in &self.lines {
                    out.push_str(&serde_json::to_string(l)?);
                    out.push('\n');
                }
            }
        }
        moirelab_core::fsio::write_atomic(&self.path, out.as_bytes())
            .with_context(|| format!("--scores {}", self.path.display()))?;
        Ok(self.lines.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extension_is_the_format_and_others_are_refused() {
        assert_eq!(Scores::new(Path::new("s.csv")).unwrap().format, Format::Csv);
        assert_eq!(
            Scores::new(Path::new("out/S.JSONL")).unwrap().format,
            Format::Jsonl
        );
        for bad in ["scores", "scores.json", "scores.txt"] {
            let e = Scores::new(Path::new(bad)).err().unwrap().to_string();
            assert!(e.starts_with(&format!("--scores {bad}:")) && e.contains(".csv or .jsonl"));
        }
    }
}
