//! `compare`: runs side by side on one page.

use super::{check_out_folder, check_run_folder};
use crate::CompareArgs;
use anyhow::Result;
use std::process::ExitCode;

pub fn compare(a: CompareArgs) -> Result<ExitCode> {
    check_out_folder("--out", &a.out)?;
    for r in &a.runs {
        check_run_folder(r)?;
    }
    let written = moirelab_report::write_compare_with(&a.runs, &a.out, a.standalone)?;
    super::print_warnings(&written.warnings);
    println!("{}", written.page.display());
    Ok(ExitCode::SUCCESS)
}
