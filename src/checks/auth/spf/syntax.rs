//! The one error of SPF record and macro syntax, shared by the record
//! parser ([`super::record`]) and the macro parser ([`super::macros`]).

/// Why a record is unusable: always a `permerror`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SPF syntax error: {0}")]
pub struct SyntaxError(pub String);
