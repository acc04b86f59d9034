//! The file backend's on-disk format and its atomic save.
//!
//! ```text
//! magic   8 bytes  "SGBAYES\0"
//! version u32 LE   1
//! nspam   u64 LE   messages learned as spam
//! nham    u64 LE
//! tokens  u64 LE   number of token records
//! msgs    u64 LE   number of message records
//! token record   × tokens: hash u64, spam u32, ham u32, last-seen day u16 (18 bytes)
//! message record × msgs:   digest 16 bytes, class u8 (1 spam, 2 ham), day u16 (19 bytes)
//! SHA-256 of every byte before it (32 bytes)
//! ```
//!
//! A save writes a temporary file in the same directory, fsyncs it, renames
//! it over the database and fsyncs the directory: a crash at any moment
//! leaves the old file or the new one. A file that is not ours, of another
//! version, cut short or altered is an error naming the path; it is never
//! replaced silently (the operator decides).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use aws_lc_rs::digest::{Context, SHA256};

use super::combine::Counts;
use super::db::{Db, Entry};
use super::{BayesError, Class};

const MAGIC: &[u8; 8] = b"SGBAYES\0";
const VERSION: u32 = 1;
const HEADER: usize = 8 + 4 + 8 * 4;
const TOKEN_RECORD: usize = 18;
const MESSAGE_RECORD: usize = 19;
const CHECKSUM: usize = 32;

/// The whole database as file bytes, checksum included.
pub fn encode(db: &Db) -> Vec<u8> {
    let size =
        HEADER + db.tokens.len() * TOKEN_RECORD + db.messages.len() * MESSAGE_RECORD + CHECKSUM;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    for n in [
        db.nspam,
        db.nham,
        db.tokens.len() as u64,
        db.messages.len() as u64,
    ] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    for (hash, e) in &db.tokens {
        out.extend_from_slice(&hash.to_le_bytes());
        out.extend_from_slice(&e.counts.spam.to_le_bytes());
        out.extend_from_slice(&e.counts.ham.to_le_bytes());
        out.extend_from_slice(&e.day.to_le_bytes());
    }
    for (digest, (class, day)) in &db.messages {
        out.extend_from_slice(digest);
        out.push(match class {
            Class::Spam => 1,
            Class::Ham => 2,
        });
        out.extend_from_slice(&day.to_le_bytes());
    }
    let mut sum = Context::new(&SHA256);
    sum.update(&out);
    out.extend_from_slice(sum.finish().as_ref());
    out
}

/// Reads file bytes back; `path` only names the file in errors.
pub fn decode(bytes: &[u8], path: &Path) -> Result<Db, BayesError> {
    let corrupt = |why: &str| BayesError::Corrupt {
        path: path.to_path_buf(),
        why: why.to_string(),
    };
    if bytes.len() < 8 || &bytes[..8] != MAGIC {
        return Err(BayesError::Foreign(path.to_path_buf()));
    }
    if bytes.len() < HEADER + CHECKSUM {
        return Err(corrupt("shorter than its header"));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or_default());
    if version != VERSION {
        return Err(BayesError::Version {
            path: path.to_path_buf(),
            found: version,
        });
    }
    let (body, sum) = bytes.split_at(bytes.len() - CHECKSUM);
    if aws_lc_rs::digest::digest(&SHA256, body).as_ref() != sum {
        return Err(corrupt("checksum mismatch (cut short or altered)"));
    }
    let field =
        |i: usize| u64::from_le_bytes(body[12 + 8 * i..20 + 8 * i].try_into().unwrap_or_default());
    let (ntokens, nmessages) = (field(2), field(3));
    let expected =
        (ntokens as u128) * TOKEN_RECORD as u128 + (nmessages as u128) * MESSAGE_RECORD as u128;
    if expected != (body.len() - HEADER) as u128 {
        return Err(corrupt("record counts do not match the file size"));
    }
    let mut db = Db {
        nspam: field(0),
        nham: field(1),
        ..Db::default()
    };
    let (tokens, messages) = body[HEADER..].split_at(ntokens as usize * TOKEN_RECORD);
    read_tokens(&mut db, tokens);
    read_messages(&mut db, messages)
        .map_err(|_| corrupt("a message record has an unknown class"))?;
    Ok(db)
}

fn read_tokens(db: &mut Db, records: &[u8]) {
    db.tokens.reserve(records.len() / TOKEN_RECORD);
    for r in records.chunks_exact(TOKEN_RECORD) {
        let u32_at = |i: usize| u32::from_le_bytes([r[i], r[i + 1], r[i + 2], r[i + 3]]);
        let hash = u64::from_le_bytes(r[..8].try_into().unwrap_or_default());
        let entry = Entry {
            counts: Counts {
                spam: u32_at(8),
                ham: u32_at(12),
            },
            day: u16::from_le_bytes([r[16], r[17]]),
        };
        db.tokens.insert(hash, entry);
    }
}

fn read_messages(db: &mut Db, records: &[u8]) -> Result<(), ()> {
    db.messages.reserve(records.len() / MESSAGE_RECORD);
    for r in records.chunks_exact(MESSAGE_RECORD) {
        let class = match r[16] {
            1 => Class::Spam,
            2 => Class::Ham,
            _ => return Err(()),
        };
        let digest: [u8; 16] = r[..16].try_into().unwrap_or_default();
        db.messages
            .insert(digest, (class, u16::from_le_bytes([r[17], r[18]])));
    }
    Ok(())
}

/// Loads the database at `path`; a missing file is an empty database (the
/// first start), anything unreadable is an error.
pub fn load(path: &Path) -> Result<Db, BayesError> {
    match std::fs::read(path) {
        Ok(bytes) => decode(&bytes, path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Db::default()),
        Err(e) => Err(BayesError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// Replaces the file at `path` with `bytes`, atomically and durably.
pub fn save(path: &Path, bytes: &[u8]) -> Result<(), BayesError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| BayesError::Io { path: p, source }
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    remove_stale_temps(path);
    let temp = temp_path(path);
    let written = write_synced(&temp, bytes).and_then(|()| std::fs::rename(&temp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(BayesError::Io {
            path: temp,
            source: e,
        });
    }
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// One temporary name per process: a `spamgate learn` and a proxy never
/// write into each other's file.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or("bayes.db".into(), |n| n.to_string_lossy());
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Temporary files left by a process killed during a save (its PID is
/// gone): removed at the next save, so crashes leave no litter behind.
fn remove_stale_temps(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let prefix = format!(".{}.tmp-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = file
            .strip_prefix(&prefix)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::bayes::FILE_NAME;

    fn sample() -> Db {
        let mut db = Db::default();
        db.learn([7; 16], &[1, 2, u64::MAX], Class::Spam, 20_000);
        db.learn([8; 16], &[2, 3], Class::Ham, 20_001);
        db
    }

    #[test]
    fn round_trip() {
        let db = sample();
        let back = decode(&encode(&db), Path::new("x")).unwrap();
        assert_eq!((back.nspam, back.nham), (1, 1));
        let mut a: Vec<_> = db.tokens.iter().map(|(h, e)| (*h, *e)).collect();
        let mut b: Vec<_> = back.tokens.iter().map(|(h, e)| (*h, *e)).collect();
        a.sort_by_key(|x| x.0);
        b.sort_by_key(|x| x.0);
        assert_eq!(a, b);
        assert_eq!(back.messages.get(&[8; 16]), Some(&(Class::Ham, 20_001)));
    }

    #[test]
    fn damaged_files_table() {
        let good = encode(&sample());
        let mut flipped = good.clone();
        flipped[HEADER + 3] ^= 0x40;
        let mut version = good.clone();
        version[8] = 9;
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("empty", vec![], "not a spamgate bayes database"),
            (
                "foreign",
                b"SQLite format 3\0 and more bytes here".to_vec(),
                "not a spamgate bayes database",
            ),
            ("truncated", good[..good.len() - 10].to_vec(), "checksum"),
            (
                "header only",
                good[..20].to_vec(),
                "shorter than its header",
            ),
            ("flipped bit", flipped, "checksum"),
            ("version", version, "version 9"),
        ];
        for (name, bytes, want) in cases {
            let error = decode(&bytes, Path::new("/data/bayes.db"))
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(want) && error.contains("/data/bayes.db"),
                "{name}: {error}"
            );
        }
    }

    #[test]
    fn save_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(FILE_NAME);
        assert_eq!(load(&path).unwrap().nspam, 0);
        save(&path, &encode(&sample())).unwrap();
        save(&path, &encode(&Db::default())).unwrap();
        assert_eq!(load(&path).unwrap().nspam, 0);
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from(FILE_NAME)],
            "no temporary file left"
        );
        // A temporary file of a process that died during a save goes at the next save.
        let stale = path.with_file_name(format!(".{FILE_NAME}.tmp-{}", u32::MAX - 1));
        std::fs::write(&stale, b"half").unwrap();
        save(&path, &encode(&Db::default())).unwrap();
        assert!(!stale.exists());
    }
}
