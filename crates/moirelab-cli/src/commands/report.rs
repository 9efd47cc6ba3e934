//! `report`: (re)write a run's gallery.

use super::check_run_folder;
use crate::ReportArgs;
use anyhow::Result;
use std::process::ExitCode;

pub fn report(a: ReportArgs) -> Result<ExitCode> {
    check_run_folder(&a.run)?;
    let written = moirelab_report::write_run_report_with(&a.run, a.standalone)?;
    super::print_warnings(&written.warnings);
    println!("{}", written.page.display());
    Ok(ExitCode::SUCCESS)
}
