//! Escaping and path helpers for the offline pages.

use crate::{ReportError, Result};
use sha2::{Digest, Sha256};
use std::path::{Component, Path, PathBuf};

/// HTML-escape a user string for text content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON for a `<script type="application/json">` block. `<`, `>` and `&` become `\u003c`,
/// `\u003e`, `\u0026` so that neither `</script>` nor `<!--` can end or change the block;
/// `JSON.parse` turns them back into the original characters.
pub fn json_for_script<T: serde::Serialize>(value: &T) -> Result<String> {
    let s = serde_json::to_string(value).map_err(|e| ReportError::Encode {
        path: PathBuf::from("<page data>"),
        what: "page data as JSON",
        msg: e.to_string(),
    })?;
    Ok(s.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026"))
}

/// A relative file path as a URL path: every byte outside the RFC 3986 unreserved set (and
/// `/`) is percent-encoded, so a run folder named `a #1?` or `<x>` still links correctly.
pub fn url_path(rel: &Path) -> String {
    let mut out = String::new();
    for (i, comp) in rel.components().enumerate() {
        if i > 0 {
            out.push('/');
        }
        let part = match comp {
            Component::ParentDir => "..".to_string(),
            Component::CurDir => ".".to_string(),
            Component::Normal(s) => s.to_string_lossy().into_owned(),
            Component::RootDir | Component::Prefix(_) => String::new(),
        };
        for b in part.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// Path of `to` relative to directory `from`. Both must be absolute and normalised
/// (canonicalised); the result uses `..` where needed.
pub fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let f: Vec<Component> = from.components().collect();
    let t: Vec<Component> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..f.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c.as_os_str());
    }
    out
}

/// Canonical absolute path; a missing path is an error naming it.
pub fn canonical(path: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(path).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Where `path` is, or will be once created: absolute, each part that exists with its links
/// resolved and the parts that do not exist yet appended as written (a `..` after such a part
/// removes it: a folder this process would create, not a link).
pub fn resolve(path: &Path) -> Result<PathBuf> {
    let io = |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut out = if path.is_absolute() {
        PathBuf::new()
    } else {
        std::env::current_dir()
            .and_then(std::fs::canonicalize)
            .map_err(io)?
    };
    for c in path.components() {
        match c {
            Component::Prefix(_) | Component::RootDir => out.push(c.as_os_str()),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => {
                out.push(n);
                if out.exists() {
                    out = std::fs::canonicalize(&out).map_err(io)?;
                }
            }
        }
    }
    Ok(out)
}

/// The run folder `path` (absolute, resolved) is or lies in: the nearest folder from it up
/// that holds both `config.toml` and `meta.json`, as every run folder does.
pub fn enclosing_run(path: &Path) -> Option<&Path> {
    use moirelab_core::run::{CONFIG_TOML, META_JSON};
    path.ancestors()
        .find(|a| a.join(CONFIG_TOML).is_file() && a.join(META_JSON).is_file())
}

/// Standard base64 with padding (RFC 4648), for CSP hash sources.
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            A[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// CSP hash source (`'sha256-…'`) of an inline `<script>` or `<style>` body, so the page can
/// forbid every other inline script instead of allowing `'unsafe-inline'`.
pub fn csp_hash(body: &str) -> String {
    format!("'sha256-{}'", base64(&Sha256::digest(body.as_bytes())))
}

/// Compact human number: integers stay integers, others get 4 significant digits.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v == v.trunc() && v.abs() < 1e15 {
        return format!("{v:.0}");
    }
    let a = v.abs();
    if (1e-3..1e5).contains(&a) {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.3e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esc_neutralises_markup_and_quotes() {
        assert_eq!(
            esc(r#"<script>"a"&'b'"#),
            "&lt;script&gt;&quot;a&quot;&amp;&#39;b&#39;"
        );
    }

    #[test]
    fn json_for_script_cannot_close_the_block_and_round_trips() {
        let v = serde_json::json!({"name": "</script><!-- & >"});
        let s = json_for_script(&v).unwrap();
        assert!(
            !s.contains('<') && !s.contains('>') && !s.contains('&'),
            "{s}"
        );
        let back: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn url_path_percent_encodes_hostile_segments() {
        let p = Path::new("../runs/a #1?<x>\"/epochs/0001/tiles/00-gradcam-pred.png");
        assert_eq!(
            url_path(p),
            "../runs/a%20%231%3F%3Cx%3E%22/epochs/0001/tiles/00-gradcam-pred.png"
        );
    }

    #[test]
    fn relative_path_climbs_out_of_the_common_prefix() {
        assert_eq!(
            relative_path(Path::new("/a/b/out"), Path::new("/a/runs/x")),
            Path::new("../../runs/x")
        );
        assert_eq!(
            relative_path(
                Path::new("/a/run/report"),
                Path::new("/a/run/probes/00.png")
            ),
            Path::new("../probes/00.png")
        );
    }

    #[test]
    fn base64_and_csp_hash_match_known_answers() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        // sha256("") = e3b0c442...; base64 of it is well known.
        assert_eq!(
            csp_hash(""),
            "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
        );
    }

    #[test]
    fn fmt_num_is_compact() {
        assert_eq!(fmt_num(3.0), "3");
        assert_eq!(fmt_num(0.123456), "0.1235");
        assert_eq!(fmt_num(0.5), "0.5");
        assert_eq!(fmt_num(1.5e-5), "1.500e-5");
    }
}
