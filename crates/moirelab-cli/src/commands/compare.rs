//! `compare`: runs side by side on one page.

use super::{check_out_folder, check_run_folder};
use crate::CompareArgs;
use anyhow::{bail, Result};
use std::process::ExitCode;

pub fn compare(a: CompareArgs) -> Result<ExitCode> {
    // One column compares nothing: the run's own page shows all of it and more (every
    // epoch, filmstrips, GIFs, the per-epoch tables).
    if let [run] = a.runs.as_slice() {
        bail!(
            "compare needs two or more run folders, got only {0}; one run's page is `moirelab \
             report {0}`",
            run.display()
        );
    }
    check_out_folder("--out", &a.out)?;
    for r in &a.runs {
        check_run_folder(r)?;
    }
    let written = moirelab_report::write_compare_with(&a.runs, &a.out, a.standalone)?;
    super::print_warnings(&written.warnings);
    println!("{}", written.page.display());
    Ok(ExitCode::SUCCESS)
}
