//! Unknown keys: collected while the file is parsed (serde_ignored), so a
//! typo such as `xclinet` is reported with every other error instead of
//! hiding them, each with its line and a "did you mean" for near misses.

use std::cell::RefCell;

use serde::de::{self, DeserializeOwned, Visitor};
use serde::forward_to_deserialize_any;

/// One key the configuration does not know, as a dotted path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKey {
    pub path: String,
    /// 1-based, 0 when the key could not be found in the text.
    pub line: u64,
    pub column: u64,
    pub suggestion: Option<&'static str>,
}

impl UnknownKey {
    pub fn message(&self) -> String {
        match self.suggestion {
            Some(known) => format!("unknown key; did you mean `{known}`?"),
            None => "unknown key".to_string(),
        }
    }
}

/// Parses `text` as `T`, returning the value and every unknown key.
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<(T, Vec<UnknownKey>), serde_saphyr::Error> {
    let mut paths = Vec::new();
    let value = serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_ignored::deserialize(de, |path| paths.push(path.to_string()))
    })?;
    // serde-saphyr's `Spanned` reads its own internal keys: not the user's.
    paths.retain(|p| !p.contains("__serde_saphyr_private"));
    let keys = paths.iter().map(|p| locate::<T>(text, p)).collect();
    Ok((value, keys))
}

fn locate<T: DeserializeOwned>(text: &str, path: &str) -> UnknownKey {
    let segments: Vec<&str> = path.split('.').collect();
    let (line, column) = position(text, &segments);
    let (parent, key) = segments.split_at(segments.len() - 1);
    let suggestion = known_fields::<T>(parent).and_then(|fields| nearest(key[0], fields));
    UnknownKey {
        path: path.to_string(),
        line,
        column,
        suggestion,
    }
}

/// Finds each segment's key after the previous one's: block (`key:` at a
/// line start) and flow (`{a: 1, key: 2}`) mappings alike. Sequence
/// indices are skipped. Only ever a position for the message.
fn position(text: &str, segments: &[&str]) -> (u64, u64) {
    let mut at = 0;
    for segment in segments.iter().filter(|s| s.parse::<usize>().is_err()) {
        match find_key(&text[at..], segment) {
            Some(offset) => at += offset,
            None => return (0, 0),
        }
    }
    let before = &text[..at];
    let line = before.matches('\n').count() as u64 + 1;
    let column = (at - before.rfind('\n').map_or(0, |n| n + 1)) as u64 + 1;
    (line, column)
}

fn find_key(text: &str, key: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(found) = text[from..].find(key) {
        let start = from + found;
        let after = text[start + key.len()..].trim_start_matches([' ', '\t', '"', '\'']);
        let before_ok = text[..start]
            .trim_end_matches(['"', '\''])
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || c == '{' || c == ',' || c == '-');
        if before_ok && after.starts_with(':') {
            return Some(start);
        }
        from = start + key.len();
    }
    None
}

/// The closest known key by edit distance, when it is close.
fn nearest(key: &str, fields: &'static [&'static str]) -> Option<&'static str> {
    let best = fields
        .iter()
        .map(|f| (strsim::damerau_levenshtein(key, f), *f))
        .min_by_key(|(distance, _)| *distance)?;
    (best.0 <= 2.max(key.len() / 4)).then_some(best.1)
}

/// The field names of the struct at `path` in `T`, asked of `T`'s own
/// `Deserialize` (serde hands them to `deserialize_struct`), so no list
/// of keys is kept by hand. Paths through sequences are not followed.
fn known_fields<T: DeserializeOwned>(path: &[&str]) -> Option<&'static [&'static str]> {
    if path.iter().any(|s| s.parse::<usize>().is_ok()) {
        return None;
    }
    let found = RefCell::new(None);
    let probe = FieldsProbe {
        path,
        found: &found,
    };
    let _ = T::deserialize(probe);
    found.into_inner()
}

/// A deserializer that walks `path` through nested structs and records the
/// fields of the struct it ends on; it produces no value.
struct FieldsProbe<'p> {
    path: &'p [&'p str],
    found: &'p RefCell<Option<&'static [&'static str]>>,
}

impl<'de> de::Deserializer<'de> for FieldsProbe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("probe"))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            *self.found.borrow_mut() = Some(fields);
            return Err(de::Error::custom("probe"));
        };
        visitor.visit_map(OneEntry {
            key: Some(first),
            value: FieldsProbe {
                path: rest,
                found: self.found,
            },
        })
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map enum
        identifier ignored_any
    }
}

/// A map of one entry: the next path segment, and the probe for the rest.
struct OneEntry<'p> {
    key: Option<&'p str>,
    value: FieldsProbe<'p>,
}

impl<'de, 'p> de::MapAccess<'de> for OneEntry<'p> {
    type Error = de::value::Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let Some(key) = self.key.take() else {
            return Ok(None);
        };
        let key = de::value::StrDeserializer::<Self::Error>::new(key);
        seed.deserialize(key).map(Some)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let value = FieldsProbe {
            path: self.value.path,
            found: self.value.found,
        };
        seed.deserialize(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw::RawConfig;

    #[test]
    fn unknown_keys_are_all_found_with_places_and_suggestions() {
        let text = "hostname: mx.example\nupstream:\n  address: '127.0.0.1:25'\n  xclinet: true\nlimits: {max_recipients: 5, max_recipents: 7}\nbogus: 1\n";
        let (_, keys) = parse::<RawConfig>(text).unwrap();
        let got: Vec<(&str, u64, u64, Option<&str>)> = keys
            .iter()
            .map(|k| (k.path.as_str(), k.line, k.column, k.suggestion))
            .collect();
        assert_eq!(
            got,
            [
                ("upstream.xclinet", 4, 3, Some("xclient")),
                ("limits.max_recipents", 5, 29, Some("max_recipients")),
                ("bogus", 6, 1, None),
            ]
        );
    }

    #[test]
    fn known_fields_of_nested_sections() {
        let fields = known_fields::<RawConfig>(&["upstream"]).unwrap();
        assert!(fields.contains(&"xclient") && fields.contains(&"tls"));
        let top = known_fields::<RawConfig>(&[]).unwrap();
        assert!(top.contains(&"relay_domains"));
        assert!(known_fields::<RawConfig>(&["listen", "0"]).is_none());
    }
}
