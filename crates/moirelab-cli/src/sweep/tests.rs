//! Unit tests of the grid parser, the cell plan and the Slurm script.

use super::collect::lines;
use super::plan::*;
use super::slurm::*;
use std::path::{Path, PathBuf};

fn axes(specs: &[&str]) -> Vec<Axis> {
    let grids: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
    parse_grid(&grids, &[], false).unwrap()
}

#[test]
fn values_split_at_top_level_commas_only() {
    let a = parse_axis("gradcam.methods=[\"gradcam\",\"hirescam\"],[\"gradcam\"]").unwrap();
    assert_eq!(a.values, ["[\"gradcam\",\"hirescam\"]", "[\"gradcam\"]"]);
    let a = parse_axis("data.knobs.artifacts=\"moire,bands\", none").unwrap();
    assert_eq!(a.values, ["\"moire,bands\"", "none"]);
    // An escaped quote does not end a string; a quote inside a bare word opens none.
    let a = parse_axis(r#"name="say \"hi\", twice",plain"#).unwrap();
    assert_eq!(a.values, [r#""say \"hi\", twice""#, "plain"]);
    let a = parse_axis(r#"name="a\\",b"#).unwrap();
    assert_eq!(a.values, [r#""a\\""#, "b"]);
    let a = parse_axis("data.root=/d/it's,/d/x]").unwrap();
    assert_eq!(a.values, ["/d/it's", "/d/x]"]);
}

#[test]
fn malformed_and_duplicate_values_name_the_grid_argument() {
    let err = |spec: &str| parse_axis(spec).unwrap_err().to_string();
    let e = err(r#"name="abc,d"#);
    assert!(
        e.starts_with(r#"--grid name="abc,d: "#) && e.contains("closing quote"),
        "{e}"
    );
    let e = err("gradcam.methods=[\"gradcam\",b");
    assert!(
        e.contains("--grid gradcam.methods=") && e.contains("closing bracket"),
        "{e}"
    );
    let e = err(r#"name="abc"d,e"#);
    assert!(
        e.contains(r#"--grid name: value "abc"d is not TOML"#),
        "{e}"
    );
    // Duplicates are the same value, however spelled.
    let e = err("train.lr=0.001,1e-3");
    assert!(
        e.contains("--grid train.lr: ") && e.contains("0.001 and 1e-3"),
        "{e}"
    );
    let e = err("train.lr=1,0.5,1.0");
    assert!(e.contains("1 and 1.0"), "{e}");
    let e = err(r#"model.arch=vgg,"vgg""#);
    assert!(e.contains(r#"vgg and "vgg""#), "{e}");
    let e = err(r#"gradcam.methods=["a", "b"],["a","b"]"#);
    assert!(e.contains("given twice"), "{e}");
    assert!(parse_axis("train.lr=0.001,0.0011,1e-4").is_ok());
    assert!(parse_axis(r#"model.arch=vgg,"VGG""#).is_ok());
}

#[test]
fn bad_grids_are_one_line_errors_naming_the_key() {
    let err = |grids: &[&str], sets: &[&str], yes: bool| {
        let g: Vec<String> = grids.iter().map(|s| s.to_string()).collect();
        let s: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        parse_grid(&g, &s, yes).unwrap_err().to_string()
    };
    assert!(err(&[], &[], false).contains("at least one --grid"));
    assert!(err(&["model.arch="], &[], false).contains("model.arch: no values"));
    assert!(err(&["model.arch"], &[], false).contains("expected section.key="));
    assert!(err(&["model.arch=a,,b"], &[], false).contains("empty value"));
    assert!(err(&["model.arch=a,a"], &[], false).contains("given twice"));
    assert!(err(&["model.arch=a", "model.arch=b"], &[], false).contains("swept twice"));
    assert!(err(&["model.arch=a,b"], &["model.arch=c"], false).contains("also fixed"));
    let big = [
        "train.seed=1,2,3,4,5,6,7,8,9,10",
        "train.lr=1,2,3,4,5,6,7,8,9,10",
    ];
    let e = err(
        &[big[0], big[1], "train.epochs=1,2,3,4,5,6,7,8,9,10,11"],
        &[],
        false,
    );
    assert!(e.contains("1100 cells") && e.contains("--yes"), "{e}");
    let g: Vec<String> = [big[0], big[1], "train.epochs=1,2,3,4,5,6,7,8,9,10,11"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(parse_grid(&g, &[], true).is_ok());
}

#[test]
fn cells_are_the_product_with_the_first_key_slowest_and_unique_names() {
    let ax = axes(&[
        "data.knobs.rho-flag=0.5,0.95",
        "model.arch=shallow,vgg,resnet",
    ]);
    let combos = combinations(&ax);
    assert_eq!(combos.len(), 6);
    assert_eq!(combos[1], ["0.5", "vgg"]);
    assert_eq!(combos[3], ["0.95", "shallow"]);
    assert_eq!(
        cell_name(4, 6, &ax, &combos[4]),
        "04_rho-flag=0.95_arch=vgg"
    );
    // Keys sharing a last component keep their full path; odd characters are replaced.
    let ax = axes(&["train.seed=1", "data.knobs.seed=2", "data.root=a/b c"]);
    let c = &combinations(&ax)[0];
    assert_eq!(
        cell_name(0, 1, &ax, c),
        "00_train-seed=1_data-knobs-seed=2_root=a_b_c"
    );
}

#[test]
fn slurm_tasks_run_the_local_commands() {
    let ax = axes(&["model.arch=shallow,vgg", "train.lr=0.1,0.01"]);
    let out = Path::new("/sw/it's here");
    let exe = Path::new("/opt/moirelab");
    let cells: Vec<CellRecord> = combinations(&ax)
        .into_iter()
        .enumerate()
        .map(|(i, v)| CellRecord {
            index: i,
            name: cell_name(i, 4, &ax, &v),
            run: PathBuf::from("runs").join(i.to_string()),
            values: v,
            status: "pending".into(),
            command: cell_command(exe, out, i),
        })
        .collect();
    let file = SweepFile {
        format_version: FORMAT_VERSION,
        base_config: "c.toml".into(),
        base_sha256: "00".into(),
        sets: vec![],
        grid: ax,
        workdir: "/work dir".into(),
        cells,
    };
    let mut file = file;
    // A line break in a value must not end the comment that lists the grid.
    file.grid[0].values[0] = "shal\nlow".into();
    let script = slurm_script(&file, out, exe);
    assert!(script.contains("#SBATCH --array=0-3\n"), "{script}");
    assert!(script.contains("model.arch=shal low,vgg"), "{script}");
    for c in &file.cells {
        assert_eq!(c.command, cell_command(exe, out, c.index));
        let line = script
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{}) ", c.index)))
            .unwrap();
        assert_eq!(line, slurm_task_line(c));
        // The shell reads the line back into exactly the command's words.
        let words = line.trim_start().split_once(") exec ").unwrap().1;
        let words = words.trim_end_matches(" ;;");
        let o = std::process::Command::new("bash")
            .args(["-c", &format!("printf '%s\\n' {words}")])
            .output()
            .unwrap();
        let got: Vec<String> = String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        assert_eq!(got, c.command);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sbatch");
    std::fs::write(&path, &script).unwrap();
    let o = std::process::Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        file.cell_sets(&file.cells[1]),
        ["model.arch=shallow", "train.lr=0.01"]
    );
}

fn sweep_file(specs: &[&str]) -> SweepFile {
    let ax = axes(specs);
    let combos = combinations(&ax);
    let n = combos.len();
    let cells = combos
        .into_iter()
        .enumerate()
        .map(|(i, v)| CellRecord {
            index: i,
            name: cell_name(i, n, &ax, &v),
            run: PathBuf::from("runs").join(cell_name(i, n, &ax, &v)),
            values: v,
            status: "pending".into(),
            command: vec![],
        })
        .collect();
    SweepFile {
        format_version: FORMAT_VERSION,
        base_config: "c.toml".into(),
        base_sha256: "00".into(),
        sets: vec![],
        grid: ax,
        workdir: "/w".into(),
        cells,
    }
}

#[test]
fn compare_folders_are_distinct_short_and_stable() {
    let long_a = format!("/d/{}a", "x".repeat(300));
    let long_b = format!("/d/{}b", "x".repeat(300));
    let spec = format!("data.root=/tmp/dx a,/tmp/dx_a,/tmp/DX_A,/tmp/other,{long_a},{long_b}");
    let file = sweep_file(&["train.seed=1,2", &spec]);
    let ls = lines(&file);
    assert_eq!(ls.len(), 6);
    let folders: Vec<&str> = ls.iter().map(|l| l.folder.as_str()).collect();
    for (i, f) in folders.iter().enumerate() {
        assert!(f.len() <= 80, "{f}");
        let lower = f.to_lowercase();
        assert!(
            folders[..i].iter().all(|g| g.to_lowercase() != lower),
            "{folders:?}"
        );
    }
    // A label no other line shares keeps its plain name; the others end in a hash.
    assert_eq!(folders[3], "root=_tmp_other");
    assert!(folders[0].starts_with("root=_tmp_dx_a-"), "{folders:?}");
    assert!(folders[4].starts_with("root=_d_xxx"), "{folders:?}");
    // Each line holds its own cells, and names depend on the grid alone.
    assert_eq!(ls[0].cells.len(), 2);
    assert_eq!(ls[0].cells[1].values, ["2", "/tmp/dx a"]);
    assert_eq!(ls[1].label, "root=/tmp/dx_a");
    let again: Vec<String> = lines(&sweep_file(&["train.seed=1,2", &spec]))
        .into_iter()
        .map(|l| l.folder)
        .collect();
    assert_eq!(again, folders);
    assert_eq!(lines(&sweep_file(&["model.width=4,6"]))[0].folder, "all");
}
