//! Values with their place in the configuration file, so that validation
//! can point at the line: the raw configuration ([`super::raw`]) and every
//! section's raw part are made of them.

use serde_saphyr::Spanned;

pub type S<T> = Spanned<T>;
