//! The SMTP wire, used by the session and by the upstream client: the codec
//! (bounded line reads, DATA framing, dot-stuffing) and the command parser.

pub mod codec;
pub mod command;
