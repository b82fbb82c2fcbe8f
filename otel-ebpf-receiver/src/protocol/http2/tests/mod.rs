//! HTTP/2 tests: frame decoding over arbitrary syscall splits and capture losses, and
//! connection scenarios (multiplexing, CONTINUATION, RST_STREAM, GOAWAY, gRPC trailers, pushes,
//! connections joined mid-way) with exact exchanges. [`enc`] builds the wire bytes.

mod connection;
mod frames;
mod midstream;

/// Minimal HTTP/2 + HPACK encoder for building test inputs.
pub mod enc {
    use crate::protocol::http2::frame::kind;

    /// HPACK integer with an `n`-bit prefix, first byte ORed with `flags` (RFC 7541 §5.1).
    pub fn int(n: u32, flags: u8, mut v: usize) -> Vec<u8> {
        let max = (1usize << n) - 1;
        if v < max {
            return vec![flags | v as u8];
        }
        let mut out = vec![flags | max as u8];
        v -= max;
        while v >= 128 {
            out.push((v % 128) as u8 | 0x80);
            v /= 128;
        }
        out.push(v as u8);
        out
    }

    fn string(s: &str) -> Vec<u8> {
        let mut out = int(7, 0, s.len());
        out.extend_from_slice(s.as_bytes());
        out
    }

    /// Indexed field (§6.1).
    pub fn idx(i: usize) -> Vec<u8> {
        int(7, 0x80, i)
    }

    /// Literal with incremental indexing, new name (§6.2.1).
    pub fn lit_idx(name: &str, value: &str) -> Vec<u8> {
        let mut out = vec![0x40];
        out.extend(string(name));
        out.extend(string(value));
        out
    }

    /// Literal with incremental indexing, indexed name (§6.2.1).
    pub fn lit_idx_name(i: usize, value: &str) -> Vec<u8> {
        let mut out = int(6, 0x40, i);
        out.extend(string(value));
        out
    }

    /// Literal without indexing, new name (§6.2.2).
    pub fn lit(name: &str, value: &str) -> Vec<u8> {
        let mut out = vec![0x00];
        out.extend(string(name));
        out.extend(string(value));
        out
    }

    /// Literal without indexing, indexed name (§6.2.2).
    pub fn lit_name(i: usize, value: &str) -> Vec<u8> {
        let mut out = int(4, 0x00, i);
        out.extend(string(value));
        out
    }

    /// A frame (RFC 9113 §4.1).
    pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = len.to_be_bytes()[1..].to_vec();
        out.push(kind);
        out.push(flags);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// HEADERS with END_HEADERS (plus `flags`).
    pub fn headers(stream: u32, flags: u8, block: &[u8]) -> Vec<u8> {
        frame(kind::HEADERS, flags | 0x4, stream, block)
    }

    /// DATA.
    pub fn data(stream: u32, end: bool, body: &[u8]) -> Vec<u8> {
        frame(kind::DATA, u8::from(end), stream, body)
    }

    /// SETTINGS.
    pub fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
        let mut p = Vec::new();
        for (id, v) in pairs {
            p.extend_from_slice(&id.to_be_bytes());
            p.extend_from_slice(&v.to_be_bytes());
        }
        frame(kind::SETTINGS, 0, 0, &p)
    }

    /// RST_STREAM with `code`.
    pub fn rst(stream: u32, code: u32) -> Vec<u8> {
        frame(kind::RST_STREAM, 0, stream, &code.to_be_bytes())
    }

    /// GET `path` request block (static :method GET, :scheme http, literal :path and
    /// :authority with indexing, user-agent without).
    pub fn get_block(path: &str) -> Vec<u8> {
        let mut b = idx(2);
        b.extend(idx(6));
        b.extend(lit_idx_name(4, path));
        b.extend(lit_idx_name(1, "example.com"));
        b.extend(lit_name(58, "test/1"));
        b
    }

    /// `:status` block (static index for 200/204/206/304/400/404/500, else literal).
    pub fn status_block(code: u16) -> Vec<u8> {
        match code {
            200 => idx(8),
            204 => idx(9),
            206 => idx(10),
            304 => idx(11),
            400 => idx(12),
            404 => idx(13),
            500 => idx(14),
            c => lit_name(8, &c.to_string()),
        }
    }
}
