//! `data check`: validate a data set and print the report.

use crate::DataCheckArgs;
use anyhow::{bail, Result};
use moirelab_data::DataConfig;
use std::path::Path;
use std::process::ExitCode;

pub fn data_check(a: DataCheckArgs) -> Result<ExitCode> {
    let mut cfg = DataConfig::for_root(&a.dir);
    if let Some(m) = a.manifest {
        cfg.manifest = Some(m);
    }
    cfg.follow_links = match a.follow_links.as_str() {
        "inside" => moirelab_data::FollowLinks::Inside,
        "all" => moirelab_data::FollowLinks::All,
        "none" => moirelab_data::FollowLinks::None,
        other => bail!("--follow-links {other}: valid values are inside, all, none"),
    };
    if let Some(n) = a.max_pixels {
        cfg.max_pixels = n;
    }
    cfg.allow_missing_class = a.allow_missing_class;
    let report = if a.eval {
        moirelab_data::check_eval(&cfg, Path::new("."), "test")?
    } else {
        moirelab_data::check(&cfg, Path::new("."))?
    };
    println!("{report}");
    Ok(if report.has_errors() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
