//! Fuzz target: HPACK header block decoding (RFC 7541) and Huffman coding.
//!
//! Stage: protocol::http2::hpack. Input: arbitrary bytes; the first byte picks a decoder at a
//! connection's start or with an unknown table (joined mid-way) and small or default limits;
//! the rest is a sequence of header blocks, each prefixed by a length byte. Checks: no panic,
//! the dynamic table and every header list stay within their limits, the decoder's work (bytes
//! copied) stays within the input size (no CPU amplification through table references), and
//! any string the Huffman decoder accepts re-encodes to bytes that decode to it again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otel_ebpf_receiver::protocol::http2::hpack::{Decoder, HeaderList, Limits, huffman};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let limits = if mode & 0x2 == 0 {
        Limits::default()
    } else {
        Limits {
            max_table_bytes: 256,
            max_list_bytes: 512,
            max_fields: 8,
        }
    };
    let mut d = if mode & 0x1 == 0 {
        Decoder::new(limits)
    } else {
        Decoder::unknown(limits)
    };
    if mode & 0x4 != 0 {
        d.set_settings_limit(usize::from(mode) << 4);
    }
    let mut list = HeaderList::default();
    while let [len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (block, next) = tail.split_at(n);
        rest = next;
        let before = d.copied_bytes();
        let _ = d.decode(block, &mut list);
        assert!(d.copied_bytes() - before <= block.len() as u64 * 8 / 5 + 1);
        assert!(d.table_bytes() <= limits.max_table_bytes);
        assert!(list.fields.len() <= limits.max_fields);
        let bytes: usize = list
            .fields
            .iter()
            .map(|(n, v)| n.len() + v.len() + 32)
            .sum();
        assert!(bytes <= limits.max_list_bytes);

        let mut plain = Vec::new();
        if huffman::decode(block, &mut plain, 1024).is_ok() {
            let again = huffman::encode(&plain);
            let mut back = Vec::new();
            huffman::decode(&again, &mut back, 1024).expect("re-encoded string decodes");
            assert_eq!(back, plain);
        }
    }
});
