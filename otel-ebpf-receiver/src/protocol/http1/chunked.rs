//! Streaming decoder of the chunked transfer coding.
//!
//! Stage: protocol::http1 (inner step). Input: the bytes of a chunked message body (RFC 9112
//! §7.1) in any split, plus counts of bytes known to exist but not captured. Output: how many
//! bytes were consumed, how many of them were chunk data (the body size), and whether the
//! last-chunk and trailer section ended. Limits: chunk-size lines and the trailer section are
//! never buffered, only counted against a byte limit; allocates nothing.

use super::ParseError;

/// Most hex digits in a chunk-size (16 fill a u64).
const MAX_SIZE_DIGITS: u8 = 16;

/// Where the decoder stands inside the chunked body.
#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// Reading `chunk-size [chunk-ext] CRLF`.
    Size(SizeLine),
    /// Inside chunk-data, `u64` bytes left.
    Data(u64),
    /// Expecting the CRLF after chunk-data; `true` once the CR was seen.
    DataEnd(bool),
    /// Inside the trailer section (RFC 9112 §7.1.2).
    Trailer { at_line_start: bool, cr: bool },
    /// The chunked body ended.
    Done,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct SizeLine {
    size: u64,
    digits: u8,
    /// Past the digits: only BWS, `;` extensions or the line end may follow.
    after_digits: bool,
    in_ext: bool,
    cr: bool,
    len: usize,
}

/// What one call consumed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Input bytes consumed.
    pub consumed: usize,
    /// Chunk-data bytes among them (counts towards the body size).
    pub data: u64,
    /// The trailer section ended: the message is complete.
    pub done: bool,
    /// The input broke the chunked syntax; nothing after `consumed` belongs to this body.
    pub error: Option<ParseError>,
}

/// Chunked body decoder state (RFC 9112 §7.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunked {
    state: State,
    /// Trailer section bytes seen (bounded by the caller's limit).
    trailer_bytes: usize,
}

impl Default for Chunked {
    fn default() -> Self {
        Self {
            state: State::Size(SizeLine::default()),
            trailer_bytes: 0,
        }
    }
}

impl Chunked {
    /// Consumes captured bytes. `limit` bounds a chunk-size line and the trailer section
    /// (bytes). Stops at the end of the body (`done`) or at the first error.
    pub fn feed(&mut self, input: &[u8], limit: usize) -> Progress {
        let mut p = Progress::default();
        while p.consumed < input.len() && !p.done {
            let rest = &input[p.consumed..];
            match &mut self.state {
                State::Data(left) => {
                    let n = (*left).min(rest.len() as u64);
                    *left -= n;
                    p.consumed += n as usize;
                    p.data = p.data.saturating_add(n);
                    if *left == 0 {
                        self.state = State::DataEnd(false);
                    }
                }
                State::Size(line) => {
                    p.consumed += 1;
                    match size_byte(line, rest[0], limit) {
                        Ok(None) => {}
                        Ok(Some(0)) => {
                            self.state = State::Trailer {
                                at_line_start: true,
                                cr: false,
                            }
                        }
                        Ok(Some(n)) => self.state = State::Data(n),
                        Err(e) => return fail(p, e),
                    }
                }
                State::DataEnd(cr) => {
                    p.consumed += 1;
                    match (rest[0], *cr) {
                        (b'\r', false) => *cr = true,
                        (b'\n', _) => self.state = State::Size(SizeLine::default()),
                        _ => return fail(p, ParseError::BadChunk),
                    }
                }
                State::Trailer { at_line_start, cr } => {
                    if *at_line_start {
                        match (rest[0], *cr) {
                            (b'\n', _) => {
                                p.consumed += 1;
                                p.done = true;
                                self.state = State::Done;
                                continue;
                            }
                            (b'\r', false) => {
                                p.consumed += 1;
                                *cr = true;
                                continue;
                            }
                            (_, true) => return fail(p, ParseError::BadChunk),
                            _ => *at_line_start = false,
                        }
                    }
                    // Inside a trailer field line: skip to its LF.
                    let (n, eol) = match rest.iter().position(|&b| b == b'\n') {
                        Some(i) => (i + 1, true),
                        None => (rest.len(), false),
                    };
                    p.consumed += n;
                    self.trailer_bytes += n;
                    if eol {
                        self.state = State::Trailer {
                            at_line_start: true,
                            cr: false,
                        };
                    }
                    if self.trailer_bytes > limit {
                        return fail(p, ParseError::TrailerTooLarge);
                    }
                }
                State::Done => p.done = true,
            }
        }
        p
    }

    /// Consumes `n` bytes that exist but were not captured. Only chunk-data can be skipped, plus
    /// the CRLF ending it (assumed present: writers commonly send size line, data and CRLF in
    /// one syscall). Returns (bytes consumed, chunk-data bytes among them); fewer consumed than
    /// `n` means the uncaptured bytes reached into framing and the caller must resynchronise.
    pub fn skip(&mut self, n: u64) -> (u64, u64) {
        let mut consumed = 0;
        let mut data = 0;
        if let State::Data(left) = &mut self.state {
            let k = (*left).min(n);
            *left -= k;
            consumed += k;
            data += k;
            if *left == 0 {
                self.state = State::DataEnd(false);
            }
        }
        if let State::DataEnd(cr) = self.state {
            let crlf = if cr { 1 } else { 2 };
            if n - consumed >= crlf {
                consumed += crlf;
                self.state = State::Size(SizeLine::default());
            }
        }
        (consumed, data)
    }
}

fn fail(mut p: Progress, e: ParseError) -> Progress {
    p.error = Some(e);
    p
}

/// One byte of a chunk-size line. Returns the chunk size when the line ended.
fn size_byte(line: &mut SizeLine, b: u8, limit: usize) -> Result<Option<u64>, ParseError> {
    line.len += 1;
    if line.len > limit {
        return Err(ParseError::BadChunk);
    }
    if line.cr && b != b'\n' {
        return Err(ParseError::BadChunk);
    }
    match b {
        b'\n' if line.digits > 0 => return Ok(Some(line.size)),
        b'\r' => line.cr = true,
        _ if line.in_ext => {}
        b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' if !line.after_digits => {
            if line.digits == MAX_SIZE_DIGITS {
                return Err(ParseError::BadChunk);
            }
            line.digits += 1;
            let v = (b as char).to_digit(16).unwrap_or(0);
            line.size = (line.size << 4) | u64::from(v);
        }
        b' ' | b'\t' if line.digits > 0 => line.after_digits = true,
        b';' if line.digits > 0 => {
            line.after_digits = true;
            line.in_ext = true;
        }
        _ => return Err(ParseError::BadChunk),
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(body: &[u8]) -> Progress {
        Chunked::default().feed(body, 1024)
    }

    #[test]
    fn decodes_sizes_extensions_and_trailers() {
        let b =
            b"5;name=\"v\"\r\nhello\r\nA \r\n0123456789\r\n0\r\nExpires: never\r\nX: y\r\n\r\nNEXT";
        let p = run(b);
        assert_eq!(
            p,
            Progress {
                consumed: b.len() - 4,
                data: 15,
                done: true,
                error: None
            }
        );
    }

    #[test]
    fn accepts_bare_lf() {
        let b = b"3\nabc\n0\n\n";
        assert_eq!(
            run(b),
            Progress {
                consumed: b.len(),
                data: 3,
                done: true,
                error: None
            }
        );
    }

    #[test]
    fn byte_by_byte_equals_whole() {
        let b = b"1f\r\n0123456789012345678901234567890\r\n0\r\nT: 1\r\n\r\n";
        let mut c = Chunked::default();
        let mut data = 0;
        for (i, byte) in b.iter().enumerate() {
            let p = c.feed(std::slice::from_ref(byte), 1024);
            assert_eq!((p.consumed, p.error), (1, None));
            data += p.data;
            assert_eq!(p.done, i == b.len() - 1);
        }
        assert_eq!(data, 31);
    }

    #[test]
    fn rejects_bad_framing() {
        assert_eq!(run(b"zz\r\n").error, Some(ParseError::BadChunk));
        assert_eq!(run(b"\r\n").error, Some(ParseError::BadChunk));
        assert_eq!(run(b"3\r\nabcX").error, Some(ParseError::BadChunk));
        assert_eq!(run(b"3\rx").error, Some(ParseError::BadChunk));
        assert_eq!(
            run(b"12345678901234567\r\n").error,
            Some(ParseError::BadChunk)
        );
        assert_eq!(run(b"0\r\n\rX").error, Some(ParseError::BadChunk));
        let mut long = b"1;".to_vec();
        long.resize(2000, b'x');
        assert_eq!(run(&long).error, Some(ParseError::BadChunk));
        let mut trailer = b"0\r\nX: ".to_vec();
        trailer.resize(2000, b'y');
        assert_eq!(run(&trailer).error, Some(ParseError::TrailerTooLarge));
    }

    #[test]
    fn skips_uncaptured_data_and_its_crlf() {
        let mut c = Chunked::default();
        let p = c.feed(b"1000\r\nabcd", 1024);
        assert_eq!((p.consumed, p.data), (10, 4));
        // 4092 data bytes + CRLF were not captured.
        assert_eq!(c.skip(4094), (4094, 4092));
        let p = c.feed(b"0\r\n\r\n", 1024);
        assert!(p.done);
        assert_eq!(c.state, State::Done);
        // Uncaptured bytes inside a size line cannot be skipped.
        let mut c = Chunked::default();
        assert_eq!(c.skip(3), (0, 0));
    }
}
