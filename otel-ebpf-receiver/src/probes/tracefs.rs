//! tracefs access: mount point discovery and tracepoint record layouts.
//!
//! Input: `/sys/kernel/tracing/events/<category>/<name>/format` (or the debugfs path).
//! Output: field offsets (bytes) of a tracepoint's record, so probes never hard-code them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where tracefs is mounted, if it is.
pub fn root() -> Option<PathBuf> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("events").is_dir())
}

/// One field of a tracepoint record: offset and size in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub offset: u32,
    pub size: u32,
}

/// Errors reading a tracepoint format.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing)")]
    NotMounted,
    #[error("tracepoint {0} does not exist on this kernel")]
    Missing(String),
    #[error("tracepoint {tp} has no field {field}")]
    NoField { tp: String, field: String },
}

/// Parses a tracefs `format` file into field name → [`Field`].
/// Lines look like `field:__u16 family;\toffset:16;\tsize:2;\tsigned:0;`.
pub fn parse_format(text: &str) -> HashMap<String, Field> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("field:") else {
            continue;
        };
        let mut parts = rest.split(';').map(str::trim);
        let Some(decl) = parts.next() else { continue };
        let name = decl.rsplit([' ', '*']).next().unwrap_or("");
        let name = name.split('[').next().unwrap_or("").to_string();
        let mut offset = None;
        let mut size = None;
        for p in parts {
            if let Some(v) = p.strip_prefix("offset:") {
                offset = v.parse().ok();
            } else if let Some(v) = p.strip_prefix("size:") {
                size = v.parse().ok();
            }
        }
        if let (Some(offset), Some(size), false) = (offset, size, name.is_empty()) {
            out.insert(name, Field { offset, size });
        }
    }
    out
}

/// Layout of one tracepoint, read from tracefs.
pub struct Tracepoint {
    pub name: String,
    fields: HashMap<String, Field>,
}

impl Tracepoint {
    /// Reads `<root>/events/<category>/<event>/format`.
    pub fn read(root: &Path, category: &str, event: &str) -> Result<Self, FormatError> {
        let name = format!("{category}:{event}");
        let path = root
            .join("events")
            .join(category)
            .join(event)
            .join("format");
        let text =
            std::fs::read_to_string(&path).map_err(|_| FormatError::Missing(name.clone()))?;
        Ok(Self {
            name,
            fields: parse_format(&text),
        })
    }

    /// Offset (bytes) of `field` in the record.
    pub fn offset(&self, field: &str) -> Result<u32, FormatError> {
        self.fields
            .get(field)
            .map(|f| f.offset)
            .ok_or_else(|| FormatError::NoField {
                tp: self.name.clone(),
                field: field.into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOCK_SEND_LENGTH: &str = "name: sock_send_length
ID: 1234
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:void * sk;\toffset:8;\tsize:8;\tsigned:0;
\tfield:__u16 family;\toffset:16;\tsize:2;\tsigned:0;
\tfield:__u8 saddr_v6[16];\toffset:40;\tsize:16;\tsigned:0;
";

    #[test]
    fn parses_fields_pointers_and_arrays() {
        let f = parse_format(SOCK_SEND_LENGTH);
        assert_eq!(f["sk"], Field { offset: 8, size: 8 });
        assert_eq!(
            f["family"],
            Field {
                offset: 16,
                size: 2
            }
        );
        assert_eq!(
            f["saddr_v6"],
            Field {
                offset: 40,
                size: 16
            }
        );
        assert_eq!(f["common_pid"].offset, 4);
        assert_eq!(f.len(), 5);
    }
}
