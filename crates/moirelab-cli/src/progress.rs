//! Terminal output of training: indicatif bars on a terminal, plain `key=value` lines on
//! stderr otherwise (indicatif hides bars off a terminal and then drops `println`s on them,
//! so CI logs would be empty — REPORT.md).

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use moirelab_train::{Event, Reporter};
use std::io::IsTerminal;

/// Bars or lines, decided once from stderr.
pub enum CliReporter {
    Bars {
        multi: MultiProgress,
        epoch_bar: Option<ProgressBar>,
        batch_bar: Option<ProgressBar>,
    },
    Lines {
        log_every: usize,
    },
}

impl CliReporter {
    pub fn new(log_every: usize) -> Self {
        if std::io::stderr().is_terminal() {
            CliReporter::Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                epoch_bar: None,
                batch_bar: None,
            }
        } else {
            CliReporter::Lines { log_every }
        }
    }

    /// A line that must be seen in both modes (above the bars on a terminal).
    pub fn line(&self, text: &str) {
        match self {
            CliReporter::Bars { multi, .. } => {
                let _ = multi.println(text);
            }
            CliReporter::Lines { .. } => eprintln!("{text}"),
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl Reporter for CliReporter {
    fn event(&mut self, ev: &Event) {
        match self {
            CliReporter::Lines { log_every } => {
                if let Some(line) = ev.plain_line(*log_every) {
                    eprintln!("{line}");
                }
            }
            CliReporter::Bars {
                multi,
                epoch_bar,
                batch_bar,
            } => match ev {
                Event::RunStart {
                    epochs,
                    start_epoch,
                    ..
                } => {
                    if let Some(line) = ev.plain_line(0) {
                        let _ = multi.println(line);
                    }
                    let bar = multi.add(ProgressBar::new(*epochs as u64));
                    bar.set_style(style("epochs {bar:30.cyan/blue} {pos}/{len} [{elapsed_precise} < {eta_precise}] {msg}"));
                    bar.set_position(start_epoch.saturating_sub(1) as u64);
                    *epoch_bar = Some(bar);
                }
                Event::EpochStart {
                    epoch,
                    batches,
                    skip,
                    ..
                } => {
                    let bar = multi.add(ProgressBar::new(*batches as u64));
                    bar.set_style(style("epoch {prefix:>3} {bar:30.green/white} {pos}/{len} [{elapsed} < {eta}] {msg}"));
                    bar.set_prefix(epoch.to_string());
                    bar.set_position(*skip as u64);
                    *batch_bar = Some(bar);
                }
                Event::Batch {
                    batch,
                    loss,
                    images_per_sec,
                    ..
                } => {
                    if let Some(bar) = batch_bar {
                        bar.set_position(*batch as u64 + 1);
                        bar.set_message(format!("loss {loss:.4}  {images_per_sec:.0} img/s"));
                    }
                }
                Event::EpochEnd { epoch, val, .. } => {
                    if let Some(bar) = batch_bar.take() {
                        bar.finish_and_clear();
                    }
                    if let Some(line) = ev.plain_line(0) {
                        let _ = multi.println(line);
                    }
                    if let Some(bar) = epoch_bar {
                        bar.set_position(*epoch as u64);
                        if let Some(v) = val {
                            bar.set_message(format!("val bacc {:.3}", v.balanced_accuracy));
                        }
                    }
                }
                Event::Warning { hook, text } => {
                    let _ = multi.println(format!("warning: {hook}: {text}"));
                }
                Event::Hook { .. } | Event::Message(_) => {
                    if let Some(line) = ev.plain_line(0) {
                        let _ = multi.println(line);
                    }
                }
            },
        }
    }
}

impl Drop for CliReporter {
    fn drop(&mut self) {
        if let CliReporter::Bars {
            epoch_bar,
            batch_bar,
            ..
        } = self
        {
            if let Some(b) = batch_bar.take() {
                b.finish_and_clear();
            }
            if let Some(b) = epoch_bar.take() {
                b.finish();
            }
        }
    }
}
