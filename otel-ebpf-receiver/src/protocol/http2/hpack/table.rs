//! HPACK static table (RFC 7541 Appendix A) and the dynamic table of one decoder (§2.3.2, §4).
//!
//! Stage: protocol::http2::hpack (inner step). Input: insertions and size updates from header
//! blocks, lookups by index. Output: entries, or "unknown" for an index whose entry we cannot
//! know. Limits: the table never holds more than its hard cap (bytes, as sized by §4.1: name +
//! value + 32 per entry), whatever the encoder asks for.
//!
//! *Partial knowledge.* A connection joined mid-way (or a header block lost to capture) leaves
//! the table's older contents unknown. The table is then *incomplete*: it keeps only the entries
//! inserted since, newest first. Those are exact: an encoder only references entries that exist,
//! and entries leave the table oldest first, so a valid reference to dynamic index `62 + i`
//! with `i` below the number of entries we hold is our `i`-th newest insertion. Larger indices
//! are [`Lookup::Unknown`]. Emptying the table (a size update to 0, or an entry larger than the
//! table) makes it complete again.

use std::collections::VecDeque;
use std::sync::Arc;

/// Per-entry overhead in the table size (§4.1, bytes).
pub const ENTRY_OVERHEAD: usize = 32;
/// Initial dynamic table size (SETTINGS_HEADER_TABLE_SIZE default, RFC 9113 §6.5.2, bytes).
pub const DEFAULT_TABLE_SIZE: usize = 4096;

/// The static table, indices 1..=61 (RFC 7541 Appendix A).
pub const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// One header field (name, value), as octets. Shared, not copied: a one-byte reference to a
/// 64 KiB entry (§6.1), or a literal that reuses an entry's name (§6.2), costs a reference
/// count, not a 64 KiB copy (HPACK CPU amplification).
pub type Entry = (Arc<[u8]>, Arc<[u8]>);

/// Result of looking an index up (§2.3.3).
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// The entry at that index.
    Found(&'a [u8], &'a [u8]),
    /// A dynamic table entry (shared storage).
    Dynamic(&'a Entry),
    /// A dynamic index whose entry predates what we know (incomplete table).
    Unknown,
    /// Index 0, or beyond the table of a complete table: a decoding error (§2.3.3).
    Invalid,
}

/// The dynamic table of one HPACK decoder (one direction of one connection).
#[derive(Clone, Debug)]
pub struct DynamicTable {
    /// Newest first.
    entries: VecDeque<Entry>,
    /// Sum of entry sizes (§4.1, bytes).
    size: usize,
    /// Current maximum size set by size updates (bytes; capped at `hard_cap`).
    capacity: usize,
    /// Most bytes we ever hold.
    hard_cap: usize,
    /// False when older entries than those held are unknown.
    complete: bool,
}

impl DynamicTable {
    /// An empty, complete table of [`DEFAULT_TABLE_SIZE`] (a connection's start) that never
    /// holds more than `hard_cap` bytes.
    pub fn new(hard_cap: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            size: 0,
            capacity: DEFAULT_TABLE_SIZE.min(hard_cap),
            hard_cap,
            complete: true,
        }
    }

    /// A table whose contents are unknown (a connection joined mid-way). Its size is unknown
    /// too, so it is taken as `hard_cap` (keeping entries longer only delays their eviction in
    /// our copy, which is harmless: see the module docs).
    pub fn unknown(hard_cap: usize) -> Self {
        Self {
            capacity: hard_cap,
            complete: false,
            ..Self::new(hard_cap)
        }
    }

    /// True when every entry of the encoder's table is known.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Forgets everything: older contents become unknown (header block lost or undecodable).
    pub fn mark_unknown(&mut self) {
        self.entries.clear();
        self.size = 0;
        self.complete = false;
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Table size (§4.1, bytes).
    pub fn size(&self) -> usize {
        self.size
    }

    /// Current maximum size (bytes).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Looks index `i` up in the static then the dynamic table (§2.3.3).
    pub fn get(&self, i: usize) -> Lookup<'_> {
        match i {
            0 => Lookup::Invalid,
            1..=61 => {
                let (n, v) = STATIC_TABLE[i - 1];
                Lookup::Found(n.as_bytes(), v.as_bytes())
            }
            _ => match self.entries.get(i - 62) {
                Some(e) => Lookup::Dynamic(e),
                None if self.complete => Lookup::Invalid,
                None => Lookup::Unknown,
            },
        }
    }

    /// Dynamic table size update to `n` bytes (§4.3, §6.3). Returns false when `n` exceeds the
    /// hard cap: the table then keeps `hard_cap` bytes and becomes incomplete.
    pub fn set_capacity(&mut self, n: usize) -> bool {
        let fits = n <= self.hard_cap;
        self.capacity = n.min(self.hard_cap);
        if !fits {
            self.complete = false;
        }
        self.evict(0);
        if n == 0 {
            self.complete = true;
        }
        fits
    }

    /// Adds an entry (§4.4): older entries are evicted to make room; an entry larger than the
    /// table empties it and is not added.
    pub fn insert(&mut self, name: Arc<[u8]>, value: Arc<[u8]>) {
        let sz = name.len() + value.len() + ENTRY_OVERHEAD;
        if sz > self.capacity {
            self.entries.clear();
            self.size = 0;
            // The encoder's table is empty too, unless it is larger than our cap.
            self.complete = self.capacity < self.hard_cap || self.complete;
            return;
        }
        self.evict(sz);
        self.size += sz;
        self.entries.push_front((name, value));
    }

    /// Evicts oldest entries until `extra` more bytes fit.
    fn evict(&mut self, extra: usize) {
        while self.size + extra > self.capacity {
            let Some((n, v)) = self.entries.pop_back() else {
                self.size = 0;
                break;
            };
            self.size -= n.len() + v.len() + ENTRY_OVERHEAD;
        }
    }
}
