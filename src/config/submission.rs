//! The `submission:` section: listeners where authenticated users send
//! mail (RFC 6409). AUTH is relayed to the upstream, which holds the
//! accounts; spamgate never sees a password database.

use std::net::SocketAddr;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::validate::Validator;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawSubmission {
    pub listen: Vec<Spanned<String>>,
}

#[derive(Debug, Clone, Default)]
pub struct SubmissionConfig {
    pub listen: Vec<SocketAddr>,
}

/// Submission listeners must be served (in `listen` or
/// `tls.implicit_listen`) and TLS must be configured: AUTH is never
/// offered in clear.
pub fn validate(
    v: &mut Validator,
    raw: &RawSubmission,
    served: &[SocketAddr],
    tls: bool,
) -> SubmissionConfig {
    let mut listen = Vec::new();
    for entry in &raw.listen {
        let Some(addr) = v.socket_addr("submission.listen", entry) else {
            continue;
        };
        if !served.contains(&addr) {
            let message = format!("{addr} is not in listen or tls.implicit_listen");
            v.error_at(entry.referenced, "submission.listen", message);
        }
        if !tls {
            v.error_at(
                entry.referenced,
                "submission.listen",
                "submission needs tls.cert and tls.key",
            );
        }
        listen.push(addr);
    }
    SubmissionConfig { listen }
}
