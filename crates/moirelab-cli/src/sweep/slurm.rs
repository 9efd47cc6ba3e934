//! Shell quoting and the Slurm array script (`--emit slurm`) whose tasks run the same cell
//! commands as the local runner.

use super::plan::{CellRecord, SweepFile};
use super::SLURM_SCRIPT;
use std::path::Path;

/// A word for a POSIX shell: single-quoted unless it is plainly safe.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=+,:@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

pub fn shell_join(words: &[String]) -> String {
    words
        .iter()
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn collect_command(exe: &Path, out: &Path) -> String {
    shell_join(&[
        exe.display().to_string(),
        "sweep".into(),
        "--collect".into(),
        out.display().to_string(),
    ])
}

/// The task line of cell `i` in the Slurm script.
pub fn slurm_task_line(cell: &CellRecord) -> String {
    format!("  {}) exec {} ;;", cell.index, shell_join(&cell.command))
}

/// A Slurm job-array script: task `i` runs cell `i`'s command in the sweep's working
/// directory; all tasks write into the same sweep folder.
pub fn slurm_script(file: &SweepFile, out: &Path, exe: &Path) -> String {
    let n = file.cells.len();
    let grid: Vec<String> = file
        .grid
        .iter()
        .map(|a| format!("{}={}", a.key, a.values.join(",")))
        .collect();
    // Comment text on one line each, whatever the values hold.
    let one_line = |t: String| t.replace(['\n', '\r'], " ");
    let mut s = format!(
        "#!/bin/bash\n\
         # moirelab sweep: {n} cells, one per array task, of\n\
         #   {grid}\n\
         # written by `moirelab sweep --emit slurm`, which also generated the data sets. Each\n\
         # task trains one cell into {runs}/<cell>;\n\
         # a finished cell is skipped, an interrupted one resumed.\n\
         # Submit, then build the table once every task has ended:\n\
         #   jobid=$(sbatch --parsable {script})\n\
         #   sbatch --dependency=afterany:$jobid --wrap {collect}\n\
         # Add #SBATCH lines for your cluster (partition, time, cpus-per-task, gres) below.\n\
         #SBATCH --job-name=moirelab-sweep\n\
         #SBATCH --array=0-{last}\n\
         #SBATCH --output={logs}/slurm-%A_%a.log\n\
         set -euo pipefail\n\
         cd {workdir}\n\
         case \"${{SLURM_ARRAY_TASK_ID:?not a Slurm array task}}\" in\n",
        grid = one_line(grid.join(" ")),
        runs = one_line(out.join("runs").display().to_string()),
        script = one_line(shell_quote(&out.join(SLURM_SCRIPT).display().to_string())),
        collect = one_line(shell_quote(&collect_command(exe, out))),
        last = n.saturating_sub(1),
        logs = one_line(out.join("logs").display().to_string()),
        workdir = shell_quote(&file.workdir.display().to_string()),
    );
    for c in &file.cells {
        s.push_str(&slurm_task_line(c));
        s.push('\n');
    }
    s.push_str("  *) echo \"sweep.sbatch: no cell $SLURM_ARRAY_TASK_ID\" >&2; exit 2 ;;\nesac\n");
    s
}
