//! Reading rule files: parse each file, and when one does not parse, parse
//! its rules one by one so that every broken rule is reported (serde stops
//! at the first error of a document).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Location;

use super::compile::{AtomTable, Compiler};
use super::error::RuleError;
use super::raw::{RawFile, RawRule, RawSkeleton, S};
use super::Rule;

/// Reads, parses and compiles every file; regexes are left pending in
/// `tables` (compiled later, all at once).
pub fn read_rules(
    files: &[PathBuf],
    tables: &mut [AtomTable; 5],
    errors: &mut Vec<RuleError>,
) -> Vec<Rule> {
    let mut rules = Vec::new();
    let mut seen: HashMap<String, (PathBuf, u64)> = HashMap::new();
    for file in files {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => {
                errors.push(whole_file(file, format!("cannot read: {e}")));
                continue;
            }
        };
        let raws = parse_file(&text, file, errors);
        let mut compiler = Compiler::new(file, errors, tables);
        for raw in &raws {
            let Some(rule) = compiler.rule(raw) else {
                continue;
            };
            if let Some((f, line)) = seen.get(&rule.name) {
                let message = format!("duplicate name; first defined at {}:{line}", f.display());
                compiler.error(raw.referenced, message);
                continue;
            }
            seen.insert(rule.name.clone(), (file.clone(), rule.line));
            rules.push(rule);
        }
    }
    rules
}

fn whole_file(file: &Path, message: String) -> RuleError {
    RuleError {
        file: file.to_path_buf(),
        line: 0,
        column: 0,
        rule: None,
        message,
    }
}

fn error_at(file: &Path, at: Option<Location>, rule: Option<String>, message: String) -> RuleError {
    let (line, column) = at.map_or((0, 0), |l| (l.line(), l.column()));
    RuleError {
        file: file.to_path_buf(),
        line,
        column,
        rule,
        message,
    }
}

/// The rules of one file; parse errors go to `errors`, the rules that do
/// parse are still returned so that their own errors are found too.
fn parse_file(text: &str, file: &Path, errors: &mut Vec<RuleError>) -> Vec<S<RawRule>> {
    if text.trim().is_empty() {
        return Vec::new();
    }
    let whole = match serde_saphyr::from_str::<RawFile>(text) {
        Ok(parsed) => return parsed.rules,
        Err(e) => error_at(file, e.location(), None, first_line(&e.to_string())),
    };
    let (rules, mut found) = parse_one_by_one(text, file);
    if found.is_empty() {
        found.push(whole);
    }
    errors.extend(found);
    rules
}

fn parse_one_by_one(text: &str, file: &Path) -> (Vec<S<RawRule>>, Vec<RuleError>) {
    let Ok(skeleton) = serde_saphyr::from_str::<RawSkeleton>(text) else {
        return (Vec::new(), Vec::new());
    };
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    for item in &skeleton.rules {
        let at = item.referenced;
        let Some(source) = rule_source(text, at) else {
            continue;
        };
        match serde_saphyr::from_str::<RawRule>(&source) {
            Ok(value) => rules.push(S {
                value,
                referenced: at,
                defined: item.defined,
            }),
            Err(e) => {
                let message = first_line(&e.to_string());
                errors.push(error_at(file, e.location(), rule_name(&source), message));
            }
        }
    }
    (rules, errors)
}

/// The text of the rule starting at `at`, placed at the same line and
/// column as in the file so that error locations stay true. It ends before
/// the first line indented less than the rule's own keys.
fn rule_source(text: &str, at: Location) -> Option<String> {
    let start = usize::try_from(at.span().byte_offset()?).ok()?;
    let indent = usize::try_from(at.column()).ok()?.saturating_sub(1);
    let rest = text.get(start..)?;
    let mut end = rest.len();
    let mut offset = 0;
    for (i, line) in rest.split_inclusive('\n').enumerate() {
        let content = line.trim_start();
        let own_indent = line.len() - content.len();
        let blank = content.trim().is_empty() || content.starts_with('#');
        if i > 0 && !blank && own_indent < indent {
            end = offset;
            break;
        }
        offset += line.len();
    }
    let lines = usize::try_from(at.line()).ok()?.saturating_sub(1);
    Some(format!(
        "{}{}{}",
        "\n".repeat(lines),
        " ".repeat(indent),
        &rest[..end]
    ))
}

/// The rule's name, for an error in a rule that does not parse.
fn rule_name(source: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct NameOnly {
        name: Option<String>,
    }
    let name = source.lines().find_map(|l| {
        let l = l.trim_start().trim_start_matches("- ");
        l.strip_prefix("name:").map(str::trim)
    })?;
    let parsed: Option<NameOnly> = serde_saphyr::from_str(&format!("name: {name}")).ok();
    parsed.and_then(|n| n.name)
}

/// serde-saphyr renders a snippet after the message; the first line is the why.
fn first_line(rendered: &str) -> String {
    rendered
        .lines()
        .next()
        .unwrap_or("invalid YAML")
        .to_string()
}
