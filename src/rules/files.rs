//! Which files a rule set comes from: configured names and globs (`*` and
//! `?` in the file name), and a cheap fingerprint of them (names, sizes,
//! modification times) that the watcher compares to notice edits.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::error::RuleError;

/// The files the patterns name now, in a stable order: patterns in
/// configuration order, a glob's matches sorted by name.
pub fn resolve(patterns: &[PathBuf], errors: &mut Vec<RuleError>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for pattern in patterns {
        match expand(pattern) {
            Ok(found) => {
                for file in found {
                    if !files.contains(&file) {
                        files.push(file);
                    }
                }
            }
            Err(message) => errors.push(RuleError {
                file: pattern.clone(),
                line: 0,
                column: 0,
                rule: None,
                message,
            }),
        }
    }
    files
}

fn expand(pattern: &Path) -> Result<Vec<PathBuf>, String> {
    let name = pattern
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let Some(name) = name.filter(|n| n.contains(['*', '?'])) else {
        return Ok(vec![pattern.to_path_buf()]);
    };
    let dir = match pattern.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let entries = std::fs::read_dir(&dir)
        .map_err(|e| format!("cannot read directory {}: {e}", dir.display()))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file() || t.is_symlink()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && glob_match(&name, n))
        .map(|n| dir.join(n))
        .collect();
    found.sort();
    Ok(found)
}

/// `*` matches any run of characters, `?` exactly one.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// What the watcher compares: every matching file with its size and time.
pub type Fingerprint = Vec<(PathBuf, Option<(SystemTime, u64)>)>;

pub fn fingerprint(patterns: &[PathBuf]) -> Fingerprint {
    let mut ignored = Vec::new();
    resolve(patterns, &mut ignored)
        .into_iter()
        .map(|file| {
            let meta = std::fs::metadata(&file).ok();
            let stamp = meta.and_then(|m| Some((m.modified().ok()?, m.len())));
            (file, stamp)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_table() {
        let cases = [
            ("*.yaml", "default.yaml", true),
            ("*.yaml", "default.yml", false),
            ("*", "x", true),
            ("a?c.yaml", "abc.yaml", true),
            ("a?c.yaml", "ac.yaml", false),
            ("*-local*.yaml", "10-local-extra.yaml", true),
            ("exact.yaml", "exact.yaml", true),
            ("exact.yaml", "exact.yaml~", false),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(glob_match(pattern, name), want, "{pattern} {name}");
        }
    }

    #[test]
    fn resolve_sorts_and_reports_missing() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.yaml", "a.yaml", ".hidden.yaml", "c.txt"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let mut errors = Vec::new();
        let patterns = [dir.path().join("*.yaml"), dir.path().join("missing.yaml")];
        let files = resolve(&patterns, &mut errors);
        assert_eq!(
            files,
            vec![
                dir.path().join("a.yaml"),
                dir.path().join("b.yaml"),
                dir.path().join("missing.yaml")
            ]
        );
        assert!(errors.is_empty());
        let missing = resolve(&[dir.path().join("nodir/*.yaml")], &mut errors);
        assert!(missing.is_empty() && errors.len() == 1, "{errors:?}");
    }
}
