//! HPACK header block decoder (RFC 7541), one per direction of an HTTP/2 connection.
//!
//! Stage: protocol::http2::connection → **hpack** → protocol::http2::stream. Input: one complete
//! header block (the fragments of a HEADERS or PUSH_PROMISE frame and its CONTINUATION frames,
//! RFC 9113 §4.3), in connection order. Output: a [`HeaderList`] of decoded fields, in block
//! order, plus the number of fields that could not be known (they reference HPACK dynamic table
//! entries we never saw: see [`table`]), or an [`HpackError`].
//!
//! Limits (an HPACK bomb costs a counted error, not memory): the dynamic table never holds more
//! than [`Limits::max_table_bytes`]; a header list keeps at most [`Limits::max_list_bytes`]
//! (name + value + 32 per field, as SETTINGS_MAX_HEADER_LIST_SIZE counts) and
//! [`Limits::max_fields`] fields — past either, decoding goes on to keep the dynamic table in
//! step but fields are no longer stored ([`HpackError::ListTooLarge`]); a string literal longer
//! than its block is an error. Integers are bounded to 2^28. No panics on any input.
//!
//! Work per input byte is bounded (HPACK CPU amplification): table entries and decoded fields
//! share their bytes ([`table::Entry`] is reference-counted), so a one-byte reference to a
//! 64 KiB entry, or a two-byte literal that reuses its name, costs a reference count, not a
//! copy; only literal strings are copied (at most 8/5 of their input bytes after Huffman
//! decoding; [`Decoder::copied_bytes`] counts them). Static-table entries are shared too.
//!
//! After any error but `ListTooLarge` and `TableTooLarge` the rest of the block is lost, and
//! with it the table's state: the table becomes incomplete (later dynamic references to entries
//! we do not know decode as unknown fields, never as wrong ones).

pub mod huffman;
pub mod table;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use table::{DynamicTable, Lookup};

/// A decoded field name or value (shared with the dynamic table when it came from there).
pub type Bytes = Arc<[u8]>;

/// Bounds of one decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes the dynamic table holds (§4.1 sizes). Size updates above it are
    /// [`HpackError::TableTooLarge`].
    pub max_table_bytes: usize,
    /// Most bytes (name + value + 32 per field) kept per header list.
    pub max_list_bytes: usize,
    /// Most fields kept per header list.
    pub max_fields: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_table_bytes: 65_536,
            max_list_bytes: 65_536,
            max_fields: 256,
        }
    }
}

/// Why a header block could not be decoded whole; each counts once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HpackError {
    /// The block ends inside a representation (§6).
    Truncated,
    /// An integer longer than 2^28 (§5.1).
    IntegerOverflow,
    /// Index 0, or past the end of a complete table (§2.3.3).
    InvalidIndex,
    /// A Huffman string with an invalid code or padding (§5.2).
    Huffman,
    /// A dynamic table size update after a field, or above SETTINGS_HEADER_TABLE_SIZE (§4.2).
    BadSizeUpdate,
    /// A size update above [`Limits::max_table_bytes`]: followed up to the cap, table
    /// incomplete.
    TableTooLarge,
    /// The decoded list went past [`Limits::max_list_bytes`] or [`Limits::max_fields`]: later
    /// fields were dropped (the table was kept in step).
    ListTooLarge,
}

/// Fields decoded from one header block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderList {
    /// Known fields (name, value), in block order.
    pub fields: Vec<(Bytes, Bytes)>,
    /// Fields whose name is unknown (they reference dynamic table entries we do not know).
    pub unknown: u32,
    /// Fields dropped by [`Limits`].
    pub dropped: u32,
}

impl HeaderList {
    /// The first value of field `name` (lower case, as HTTP/2 requires), if known.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(n, _)| &n[..] == name.as_bytes())
            .map(|(_, v)| &v[..])
    }

    /// True when some fields could not be known or were dropped: a field absent from
    /// [`HeaderList::fields`] may still have been sent.
    pub fn incomplete(&self) -> bool {
        self.unknown > 0 || self.dropped > 0
    }
}

/// HPACK decoder state of one direction.
#[derive(Clone, Debug)]
pub struct Decoder {
    table: DynamicTable,
    limits: Limits,
    /// Largest SETTINGS_HEADER_TABLE_SIZE the peer (the decoding side) announced (bytes).
    settings_limit: usize,
    /// Bytes copied into new storage so far (literal strings): the decoder's work.
    copied: u64,
}

impl Decoder {
    /// A decoder at a connection's start (empty, complete table of 4096 bytes).
    pub fn new(limits: Limits) -> Self {
        Self {
            table: DynamicTable::new(limits.max_table_bytes),
            limits,
            settings_limit: table::DEFAULT_TABLE_SIZE,
            copied: 0,
        }
    }

    /// A decoder whose table starts at `size` bytes instead of 4096 (RFC 7541 Appendix C.5/C.6
    /// assume SETTINGS_HEADER_TABLE_SIZE = 256 from the start).
    pub fn with_table_size(limits: Limits, size: usize) -> Self {
        let mut d = Self::new(limits);
        d.table.set_capacity(size);
        d.settings_limit = size;
        d
    }

    /// A decoder for a connection joined mid-way: its table's contents are unknown.
    pub fn unknown(limits: Limits) -> Self {
        Self {
            table: DynamicTable::unknown(limits.max_table_bytes),
            ..Self::new(limits)
        }
    }

    /// The dynamic table (read-only).
    pub fn table(&self) -> &DynamicTable {
        &self.table
    }

    /// A header block was lost (not captured, or unparseable): the table state is unknown.
    pub fn mark_unknown(&mut self) {
        self.table.mark_unknown();
    }

    /// The decoding side sent SETTINGS_HEADER_TABLE_SIZE = `n` (RFC 9113 §6.5.2). The largest
    /// value seen bounds size updates (lenient about when the SETTINGS takes effect).
    pub fn set_settings_limit(&mut self, n: usize) {
        self.settings_limit = self.settings_limit.max(n);
    }

    /// Bytes copied into new storage since the decoder was made (literal strings): the
    /// measure of its work, at most 8/5 of the input bytes.
    pub fn copied_bytes(&self) -> u64 {
        self.copied
    }

    /// Bytes held by the dynamic table (§4.1 sizes).
    pub fn table_bytes(&self) -> usize {
        self.table.size()
    }

    /// Decodes one complete header block into `out` (cleared first). On error `out` holds the
    /// fields decoded before it.
    pub fn decode(&mut self, block: &[u8], out: &mut HeaderList) -> Result<(), HpackError> {
        *out = HeaderList::default();
        match self.decode_fields(block, out) {
            Ok(late) => late.map_or(Ok(()), Err),
            Err(e) => {
                // The rest of the block (and its table insertions) is lost.
                self.table.mark_unknown();
                Err(e)
            }
        }
    }

    /// Decodes the fields of `block`; `Ok(Some(e))` for errors that let decoding go on.
    fn decode_fields(
        &mut self,
        block: &[u8],
        out: &mut HeaderList,
    ) -> Result<Option<HpackError>, HpackError> {
        let mut late = None; // error reported after the whole block
        let mut list_bytes = 0usize;
        let mut r = Reader { b: block, at: 0 };
        let mut fields_seen = false;
        while !r.done() {
            let first = r.peek();
            let result = if first & 0x80 != 0 {
                // Indexed header field (§6.1).
                let i = r.int(7)?;
                match self.table.get(i) {
                    Lookup::Found(..) => {
                        let (n, v) = self.static_entry(i);
                        Field::Known(n, v)
                    }
                    Lookup::Dynamic((n, v)) => Field::Known(n.clone(), v.clone()),
                    Lookup::Unknown => Field::Unknown,
                    Lookup::Invalid => return Err(HpackError::InvalidIndex),
                }
            } else if first & 0xe0 == 0x20 {
                // Dynamic table size update (§6.3).
                let n = r.int(5)?;
                if fields_seen || n > self.settings_limit {
                    late.get_or_insert(HpackError::BadSizeUpdate);
                }
                if !self.table.set_capacity(n) {
                    late = Some(HpackError::TableTooLarge);
                }
                continue;
            } else {
                // Literal: with incremental indexing (§6.2.1, 6-bit index), without indexing
                // (§6.2.2) or never indexed (§6.2.3) (4-bit index).
                let indexing = first & 0xc0 == 0x40;
                let idx = r.int(if indexing { 6 } else { 4 })?;
                let name = if idx == 0 {
                    Some(self.string(&mut r)?)
                } else {
                    match self.table.get(idx) {
                        Lookup::Found(..) => Some(self.static_entry(idx).0),
                        Lookup::Dynamic((n, _)) => Some(n.clone()),
                        Lookup::Unknown => None,
                        Lookup::Invalid => return Err(HpackError::InvalidIndex),
                    }
                };
                let value = self.string(&mut r)?;
                match name {
                    Some(name) => {
                        if indexing {
                            self.table.insert(name.clone(), value.clone());
                        }
                        Field::Known(name, value)
                    }
                    None => {
                        if indexing {
                            // An entry we cannot name: everything older shifts by one unknown.
                            self.table.mark_unknown();
                        }
                        Field::Unknown
                    }
                }
            };
            fields_seen = true;
            match result {
                Field::Unknown => out.unknown += 1,
                Field::Known(n, v) => {
                    list_bytes += n.len() + v.len() + table::ENTRY_OVERHEAD;
                    if list_bytes > self.limits.max_list_bytes
                        || out.fields.len() >= self.limits.max_fields
                    {
                        out.dropped += 1;
                        late = Some(HpackError::ListTooLarge);
                    } else {
                        out.fields.push((n, v));
                    }
                }
            }
        }
        Ok(late)
    }

    /// Static table entry `i` (1..=61) as shared bytes (made once per process).
    fn static_entry(&self, i: usize) -> (Bytes, Bytes) {
        static STATICS: std::sync::OnceLock<Box<[(Bytes, Bytes)]>> = std::sync::OnceLock::new();
        let statics = STATICS.get_or_init(|| {
            table::STATIC_TABLE
                .iter()
                .map(|(n, v)| (Bytes::from(n.as_bytes()), Bytes::from(v.as_bytes())))
                .collect()
        });
        statics[i - 1].clone()
    }

    /// Reads a string literal (§5.2) of at most the rest of the block (Huffman output ≤ 8/5 of
    /// its input).
    fn string(&mut self, r: &mut Reader<'_>) -> Result<Bytes, HpackError> {
        let huff = r.peek() & 0x80 != 0;
        let len = r.int(7)?;
        let Some(raw) = r.take(len) else {
            return Err(HpackError::Truncated);
        };
        if !huff {
            self.copied += raw.len() as u64;
            return Ok(Bytes::from(raw));
        }
        let mut out = Vec::with_capacity(len + len / 2);
        match huffman::decode(raw, &mut out, len.saturating_mul(2)) {
            Ok(()) => {
                self.copied += out.len() as u64;
                Ok(Bytes::from(out))
            }
            Err(_) => Err(HpackError::Huffman),
        }
    }
}

enum Field {
    Known(Bytes, Bytes),
    Unknown,
}

/// Cursor over a header block.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn done(&self) -> bool {
        self.at >= self.b.len()
    }

    fn peek(&self) -> u8 {
        self.b.get(self.at).copied().unwrap_or(0)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.b.get(self.at..end)?;
        self.at = end;
        Some(s)
    }

    /// Integer with an `n`-bit prefix (§5.1), bounded to 2^28.
    fn int(&mut self, n: u32) -> Result<usize, HpackError> {
        let Some(&first) = self.b.get(self.at) else {
            return Err(HpackError::Truncated);
        };
        self.at += 1;
        let max = (1usize << n) - 1;
        let mut v = usize::from(first) & max;
        if v < max {
            return Ok(v);
        }
        let mut shift = 0;
        loop {
            let Some(&b) = self.b.get(self.at) else {
                return Err(HpackError::Truncated);
            };
            self.at += 1;
            v += usize::from(b & 0x7f) << shift;
            if v > 1 << 28 {
                return Err(HpackError::IntegerOverflow);
            }
            if b & 0x80 == 0 {
                return Ok(v);
            }
            shift += 7;
            if shift > 28 {
                return Err(HpackError::IntegerOverflow);
            }
        }
    }
}
