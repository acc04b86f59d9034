//! Rule file errors, each pinned to a file, line, column and rule, so that
//! an operator can fix every problem of a rule set in one pass.

use std::fmt;
use std::path::PathBuf;

/// One problem found while loading rule files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
    /// The rule's name, when the problem is inside a named rule.
    pub rule: Option<String>,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if let Some(rule) = &self.rule {
            write!(f, "rule {rule}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in one load of a rule set.
#[derive(Debug, thiserror::Error)]
pub struct RuleErrors(pub Vec<RuleError>);

impl fmt::Display for RuleErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// `spamgate check` prints rule errors with the configuration's: same format.
impl From<RuleError> for crate::config::ConfigError {
    fn from(e: RuleError) -> Self {
        crate::config::ConfigError {
            file: e.file,
            line: e.line,
            column: e.column,
            key: e.rule.map(|r| format!("rule {r}")).unwrap_or_default(),
            message: e.message,
        }
    }
}
