//! The `rules` section: which rule files to load and how the rule engine
//! acts on them. The rules themselves live in their own files (see
//! `docs/rules.md`) so that operators can edit and reload them without
//! touching the main configuration.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::span::S;
use super::validate::Validator;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawRules {
    pub files: Vec<S<String>>,
    pub mode: Option<S<String>>,
    pub watch: Option<bool>,
    pub watch_interval: Option<S<String>>,
}

/// Whether rule actions are carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuleMode {
    /// Actions apply.
    #[default]
    Enforce,
    /// Rules are evaluated and counted, never acted on.
    Monitor,
}

impl RuleMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleMode::Enforce => "enforce",
            RuleMode::Monitor => "monitor",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RulesConfig {
    /// File names or globs (`*` and `?` in the last path component),
    /// relative ones resolved against the configuration file's directory.
    pub files: Vec<PathBuf>,
    /// `monitor` here overrides every rule's own mode.
    pub mode: RuleMode,
    /// Reload when a rule file changes (besides SIGHUP).
    pub watch: bool,
    /// How often file modification times are compared.
    pub watch_interval: Duration,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            files: Vec::new(),
            mode: RuleMode::Enforce,
            watch: true,
            watch_interval: Duration::from_secs(1),
        }
    }
}

impl RulesConfig {
    /// True when rule files are configured at all.
    pub fn is_on(&self) -> bool {
        !self.files.is_empty()
    }
}

pub fn validate(v: &mut Validator, raw: &RawRules, config_file: &Path) -> RulesConfig {
    let base = config_file.parent().unwrap_or(Path::new(""));
    let files = raw
        .files
        .iter()
        .filter_map(|f| file_pattern(v, f, base))
        .collect();
    let modes = [
        ("enforce", RuleMode::Enforce),
        ("monitor", RuleMode::Monitor),
    ];
    let defaults = RulesConfig::default();
    let interval = v.duration(
        "rules.watch_interval",
        raw.watch_interval.as_ref(),
        defaults.watch_interval,
    );
    if interval < Duration::from_millis(100) {
        if let Some(s) = &raw.watch_interval {
            v.error_at(
                s.referenced,
                "rules.watch_interval",
                "must be at least 100ms",
            );
        }
    }
    RulesConfig {
        files,
        mode: v.choice("rules.mode", raw.mode.as_ref(), &modes, RuleMode::Enforce),
        watch: raw.watch.unwrap_or(defaults.watch),
        watch_interval: interval,
    }
}

/// Wildcards are allowed in the file name only, so that a pattern names
/// one directory to look in (and to watch).
fn file_pattern(v: &mut Validator, value: &S<String>, base: &Path) -> Option<PathBuf> {
    let text = value.value.trim();
    let path = Path::new(text);
    let dir_has_wildcard = path
        .parent()
        .is_some_and(|p| p.to_string_lossy().contains(['*', '?', '[']));
    let problem = match () {
        _ if text.is_empty() => Some("is empty"),
        _ if dir_has_wildcard => Some("wildcards are allowed in the file name only"),
        _ if text.contains('[') => Some("only the wildcards * and ? are supported"),
        _ => None,
    };
    if let Some(problem) = problem {
        v.error_at(
            value.referenced,
            "rules.files",
            format!("'{text}' {problem}"),
        );
        return None;
    }
    Some(base.join(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<RulesConfig, Vec<String>> {
        let raw: RawRules = serde_saphyr::from_str(yaml).unwrap();
        let mut v = Validator::new(Path::new("/etc/spamgate/spamgate.yaml"));
        let config = validate(&mut v, &raw, Path::new("/etc/spamgate/spamgate.yaml"));
        match v.errors.is_empty() {
            true => Ok(config),
            false => Err(v.errors.iter().map(ToString::to_string).collect()),
        }
    }

    #[test]
    fn table() {
        let ok =
            parse("files: ['rules/*.yaml', '/abs/x.yaml']\nmode: monitor\nwatch: false\n").unwrap();
        assert_eq!(
            ok.files,
            vec![
                PathBuf::from("/etc/spamgate/rules/*.yaml"),
                PathBuf::from("/abs/x.yaml")
            ]
        );
        assert_eq!(ok.mode, RuleMode::Monitor);
        assert!(!ok.watch);
        let cases = [
            ("files: ['r*/x.yaml']", "file name only"),
            ("files: ['']", "is empty"),
            ("files: ['r/[ab].yaml']", "only the wildcards"),
            ("mode: loud", "not one of"),
            ("watch_interval: 1ms", "at least 100ms"),
        ];
        for (yaml, want) in cases {
            let errors = parse(yaml).unwrap_err();
            assert!(errors[0].contains(want), "{yaml}: {errors:?}");
            assert!(errors[0].contains(":1:"), "{yaml}: {errors:?}");
        }
    }
}
