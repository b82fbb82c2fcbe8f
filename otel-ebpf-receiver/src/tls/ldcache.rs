//! glibc's `/etc/ld.so.cache` reader (the `glibc-ld.so.cache1.1` format).
//!
//! Stage: used by [`super::needed`] to resolve `DT_NEEDED` names like `ld.so` does.
//! Input: the cache file's bytes (read from `/proc/PID/root/etc/ld.so.cache`, so the
//! process's own cache inside its container).
//! Output: [`LdCache`], a name → path map of the x86-64 libc6 entries.
//! Format (glibc `sysdeps/generic/dl-cache.h`): header of 48 bytes (`glibc-ld.so.cache`,
//! `1.1`, `nlibs` u32, `len_strings` u32, flags u8, 3 pad, `extension_offset` u32, 3 unused
//! u32), then `nlibs` entries of 24 bytes (flags i32, key u32, value u32, osversion u32,
//! hwcap u64); key and value are string offsets from the start of the new-format header.
//! An old `ld.so-1.7.0` section in front (pre-2.32 "compat" caches: 16-byte header and
//! 12-byte entries) is skipped.
//! Limits: entries with a hwcap (glibc-hwcaps subdirectories) are ignored; the first
//! plain entry for a name wins (ldconfig sorts preferred entries first). Little-endian only.

use std::collections::HashMap;
use std::path::PathBuf;

const NEW_MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
const OLD_MAGIC: &[u8] = b"ld.so-1.7.0";
/// `FLAG_ELF_LIBC6 | FLAG_X8664_LIB64`.
const X86_64_LIBC6: i32 = 0x0303;

/// Why a cache cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LdCacheError {
    /// Neither magic found at the expected place.
    #[error("not a glibc ld.so.cache (unknown magic)")]
    BadMagic,
    /// Header or entries run past the end of the file.
    #[error("truncated ld.so.cache")]
    Truncated,
}

/// x86-64 library name → path, from one cache file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LdCache {
    entries: HashMap<String, PathBuf>,
}

impl LdCache {
    /// Parses the cache's bytes.
    pub fn parse(data: &[u8]) -> Result<LdCache, LdCacheError> {
        let mut base = 0usize;
        if data.starts_with(OLD_MAGIC) {
            let nlibs = u32_at(data, 12).ok_or(LdCacheError::Truncated)? as usize;
            let end = nlibs
                .checked_mul(12)
                .and_then(|n| n.checked_add(16))
                .ok_or(LdCacheError::Truncated)?;
            base = end.next_multiple_of(8);
        }
        let new = data.get(base..).ok_or(LdCacheError::Truncated)?;
        if !new.starts_with(NEW_MAGIC) {
            return Err(if base > 0 {
                LdCacheError::Truncated
            } else {
                LdCacheError::BadMagic
            });
        }
        let nlibs = u32_at(new, 20).ok_or(LdCacheError::Truncated)? as usize;
        let len_strings = u32_at(new, 24).ok_or(LdCacheError::Truncated)? as usize;
        let end = nlibs
            .checked_mul(24)
            .and_then(|n| n.checked_add(48))
            .and_then(|n| n.checked_add(len_strings));
        if end.is_none_or(|e| e > new.len()) {
            return Err(LdCacheError::Truncated);
        }
        let string = |off: u32| -> Option<&str> {
            let s = new.get(off as usize..)?;
            let end = memchr::memchr(0, s)?;
            std::str::from_utf8(&s[..end]).ok()
        };
        let mut entries = HashMap::new();
        for i in 0..nlibs {
            let at = 48 + i * 24;
            let flags = u32_at(new, at).ok_or(LdCacheError::Truncated)? as i32;
            let hwcap = u64::from(u32_at(new, at + 16).ok_or(LdCacheError::Truncated)?)
                | (u64::from(u32_at(new, at + 20).ok_or(LdCacheError::Truncated)?) << 32);
            if flags != X86_64_LIBC6 || hwcap != 0 {
                continue;
            }
            let key = u32_at(new, at + 4).ok_or(LdCacheError::Truncated)?;
            let value = u32_at(new, at + 8).ok_or(LdCacheError::Truncated)?;
            if let (Some(k), Some(v)) = (string(key), string(value)) {
                entries
                    .entry(k.to_string())
                    .or_insert_with(|| PathBuf::from(v));
            }
        }
        Ok(LdCache { entries })
    }

    /// The path recorded for `name` (e.g. `libssl.so.3` → `/lib/x86_64-linux-gnu/libssl.so.3`).
    pub fn lookup(&self, name: &str) -> Option<&PathBuf> {
        self.entries.get(name)
    }

    /// Number of x86-64 entries kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no entry was kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real cache agrees with `ldconfig -p` on every plain x86-64 entry.
    #[test]
    fn real_cache_matches_ldconfig() {
        let data = std::fs::read("/etc/ld.so.cache").expect("/etc/ld.so.cache");
        let cache = LdCache::parse(&data).unwrap();
        let out = std::process::Command::new("/sbin/ldconfig")
            .arg("-p")
            .output()
            .expect("ldconfig");
        let text = String::from_utf8(out.stdout).unwrap();
        let mut expected: HashMap<&str, &str> = HashMap::new();
        for line in text.lines().skip(1) {
            let Some((left, path)) = line.trim().split_once(" => ") else {
                continue;
            };
            let Some((name, flags)) = left.split_once(' ') else {
                continue;
            };
            if flags == "(libc6,x86-64)" {
                expected.entry(name).or_insert(path);
            }
        }
        assert!(
            expected.len() > 50,
            "ldconfig -p lists the system libraries"
        );
        assert_eq!(cache.len(), expected.len());
        for (name, path) in expected {
            assert_eq!(
                cache.lookup(name).map(|p| p.to_str().unwrap()),
                Some(path),
                "{name}"
            );
        }
        assert!(cache.lookup("libssl.so.3").is_some());
    }

    #[test]
    fn broken_caches_are_errors() {
        assert_eq!(LdCache::parse(b""), Err(LdCacheError::BadMagic));
        assert_eq!(
            LdCache::parse(b"something else entirely"),
            Err(LdCacheError::BadMagic)
        );
        let data = std::fs::read("/etc/ld.so.cache").unwrap();
        for cut in [20, 47, 48, 100, data.len() / 2] {
            assert_eq!(
                LdCache::parse(&data[..cut]),
                Err(LdCacheError::Truncated),
                "cut {cut}"
            );
        }
        // Old-format prefix with absurd count.
        let mut old = OLD_MAGIC.to_vec();
        old.extend_from_slice(&[0, u32::MAX as u8, 0xff, 0xff, 0xff]);
        assert!(LdCache::parse(&old).is_err());
    }

    #[test]
    fn old_format_prefix_is_skipped() {
        let new = std::fs::read("/etc/ld.so.cache").unwrap();
        let mut data = OLD_MAGIC.to_vec();
        data.push(0);
        data.extend_from_slice(&2u32.to_le_bytes());
        data.extend_from_slice(&[0u8; 24]); // two 12-byte old entries
        assert_eq!(data.len(), 40);
        data.extend_from_slice(&new);
        assert_eq!(LdCache::parse(&data), LdCache::parse(&new));
    }
}
