//! The SMTP server side: wire codec, command parser, replies and the session.

pub mod codec;
pub mod command;
