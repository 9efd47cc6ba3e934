//! Every document the code cites must exist: a `docs/<NAME>.md` mentioned in a source file, a
//! script, a config or a top-level document is looked up under the repository root, and every
//! relative Markdown link between the documents in `docs/` must resolve. The same holds for
//! the scripts the code and the documents name (`scripts/….sh`, `scripts/….py`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The repository root: two levels above this crate's manifest. The run-time
/// `CARGO_MANIFEST_DIR` is read first (see `moirelab_testkit::scripts_dir` for why).
fn repo_root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let root = manifest.join("../..");
    let workspace = std::fs::read_to_string(root.join("Cargo.toml")).unwrap_or_default();
    assert!(
        workspace.contains("[workspace]"),
        "{}: not the workspace root (no [workspace] in Cargo.toml)",
        root.display()
    );
    root
}

/// Files under `dir` (recursively, sorted), skipping hidden entries and build output.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') || name == "target" || name == "__pycache__" {
            continue;
        }
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-')
}

/// `docs/….md` references in `text`, as paths relative to the repository root. A reference
/// starts at `docs/` not preceded by a word character and runs over path characters; a
/// sentence's final `.` is not part of it.
fn doc_references(text: &str) -> Vec<String> {
    references(text, "docs/", &[".md"])
}

/// References starting with `prefix` (e.g. `scripts/`) and ending in one of `exts`, by the
/// rules of [`doc_references`].
fn references(text: &str, prefix: &str, exts: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(pos) = text[from..].find(prefix) {
        let start = from + pos;
        from = start + prefix.len();
        let preceded_by_word = text[..start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if preceded_by_word {
            continue;
        }
        let len: usize = text[start..]
            .chars()
            .take_while(|&c| is_path_char(c))
            .map(char::len_utf8)
            .sum();
        let candidate = text[start..start + len].trim_end_matches('.');
        let named = exts
            .iter()
            .any(|e| candidate.ends_with(e) && candidate.len() > prefix.len() + e.len());
        if named {
            out.push(candidate.to_string());
        }
    }
    out
}

/// Targets of relative Markdown links `](target)` in `text` that point at `.md` files, without
/// their `#fragment`. Absolute URLs are not relative links and are skipped.
fn markdown_links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(pos) = text[from..].find("](") {
        let start = from + pos + 2;
        from = start;
        let Some(end) = text[start..].find(')') else {
            break;
        };
        let target = &text[start..start + end];
        let target = target.split('#').next().unwrap_or_default();
        if target.contains("://") || !target.ends_with(".md") {
            continue;
        }
        out.push(target.to_string());
    }
    out
}

#[test]
fn reference_extraction_finds_doc_paths_and_only_them() {
    // Written with `D/` for the folder so this file does not cite these names itself.
    let text = "see D/GRADCAM.md. Also (D/METRICS.md \"Speed\"), `D/a-b_c.md`;\n\
                not myD/X.md, not D/, not D/folder/, not D/.md, and ../D/Y.md"
        .replace("D/", "docs/");
    let want: Vec<String> = ["D/GRADCAM.md", "D/METRICS.md", "D/a-b_c.md", "D/Y.md"]
        .iter()
        .map(|w| w.replace("D/", "docs/"))
        .collect();
    assert_eq!(doc_references(&text), want);
    let md = "[a](FORMATS.md), [b](METRICS.md#speed), [c](../BENCHMARKS.md), \
              [d](https://example.org/X.md), [e](pic.png)";
    assert_eq!(
        markdown_links(md),
        ["FORMATS.md", "METRICS.md", "../BENCHMARKS.md"]
    );
}

#[test]
fn every_doc_the_code_cites_exists() {
    let root = repo_root();
    let mut files = Vec::new();
    for dir in ["crates", "scripts", "configs", "data"] {
        walk(&root.join(dir), &mut files);
    }
    for top in ["README.md", "BENCHMARKS.md"] {
        files.push(root.join(top));
    }
    // reference -> files citing it
    let mut cited: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in &files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue; // binary files (fonts, images) cannot cite anything
        };
        let rel = f
            .strip_prefix(&root)
            .unwrap_or(f)
            .to_string_lossy()
            .into_owned();
        for r in doc_references(&text) {
            let by = cited.entry(r).or_default();
            if !by.contains(&rel) {
                by.push(rel.clone());
            }
        }
    }
    assert!(
        !cited.is_empty(),
        "no docs/*.md reference found under {}: the scan is broken",
        root.display()
    );
    let missing: Vec<String> = cited
        .iter()
        .filter(|(r, _)| !root.join(r).is_file())
        .map(|(r, by)| format!("{r} (cited by {})", by.join(", ")))
        .collect();
    assert!(
        missing.is_empty(),
        "documents cited but missing:\n{}",
        missing.join("\n")
    );
}

#[test]
fn links_between_docs_resolve() {
    let docs = repo_root().join("docs");
    let mut files = Vec::new();
    walk(&docs, &mut files);
    let mut broken = Vec::new();
    let mut checked = 0;
    for f in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "md"))
    {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        let dir = f.parent().unwrap_or(&docs);
        for link in markdown_links(&text) {
            checked += 1;
            if !dir.join(&link).is_file() {
                broken.push(format!(
                    "{}: link to {link}",
                    f.strip_prefix(&docs).unwrap_or(f).display()
                ));
            }
        }
    }
    assert!(checked > 0, "{}: no Markdown links found", docs.display());
    assert!(
        broken.is_empty(),
        "broken links in docs/:\n{}",
        broken.join("\n")
    );
}

#[test]
fn every_script_the_code_and_docs_name_exists() {
    let root = repo_root();
    let mut files = Vec::new();
    for dir in ["crates", "scripts", "configs", "docs", ".ci"] {
        walk(&root.join(dir), &mut files);
    }
    files.push(root.join(".ci/run"));
    for top in ["README.md", "BENCHMARKS.md"] {
        files.push(root.join(top));
    }
    let mut missing = Vec::new();
    let mut checked = 0;
    for f in &files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        for r in references(&text, "scripts/", &[".sh", ".py"]) {
            checked += 1;
            if !root.join(&r).is_file() {
                missing.push(format!("{r} (named in {})", f.display()));
            }
        }
    }
    assert!(
        checked > 10,
        "only {checked} script references found: the scan is broken"
    );
    missing.dedup();
    assert!(
        missing.is_empty(),
        "scripts named but missing:\n{}",
        missing.join("\n")
    );
}
