//! HPACK decoder tests: every example of RFC 7541 Appendix C (C.2–C.6) byte-exact, with the
//! dynamic table after each block; partial knowledge; limits and malformed input.

use super::table::{DynamicTable, Lookup};
use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn pairs(list: &HeaderList) -> Vec<(String, String)> {
    list.fields
        .iter()
        .map(|(n, v)| {
            (
                String::from_utf8(n.to_vec()).unwrap(),
                String::from_utf8(v.to_vec()).unwrap(),
            )
        })
        .collect()
}

fn p(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Dynamic table contents, newest first.
fn table(d: &Decoder) -> Vec<(String, String)> {
    (62..62 + d.table().len())
        .map(|i| match d.table().get(i) {
            Lookup::Dynamic((n, v)) => (
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ),
            other => panic!("index {i}: {other:?}"),
        })
        .collect()
}

fn decode(d: &mut Decoder, block: &str) -> HeaderList {
    let mut out = HeaderList::default();
    d.decode(&hex(block), &mut out).expect("decodes");
    out
}

#[test]
fn c2_literal_and_indexed_fields() {
    // C.2.1 Literal Header Field with Indexing.
    let mut d = Decoder::new(Limits::default());
    let out = decode(
        &mut d,
        "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
    );
    assert_eq!(pairs(&out), p(&[("custom-key", "custom-header")]));
    assert_eq!(table(&d), p(&[("custom-key", "custom-header")]));
    assert_eq!(d.table_bytes(), 55);
    // C.2.2 Literal Header Field without Indexing.
    let mut d = Decoder::new(Limits::default());
    let out = decode(&mut d, "040c 2f73 616d 706c 652f 7061 7468");
    assert_eq!(pairs(&out), p(&[(":path", "/sample/path")]));
    assert!(table(&d).is_empty());
    // C.2.3 Literal Header Field Never Indexed.
    let mut d = Decoder::new(Limits::default());
    let out = decode(&mut d, "1008 7061 7373 776f 7264 0673 6563 7265 74");
    assert_eq!(pairs(&out), p(&[("password", "secret")]));
    assert!(table(&d).is_empty());
    // C.2.4 Indexed Header Field.
    let mut d = Decoder::new(Limits::default());
    let out = decode(&mut d, "82");
    assert_eq!(pairs(&out), p(&[(":method", "GET")]));
    assert!(table(&d).is_empty());
}

/// C.3 (plain) and C.4 (Huffman) decode to the same lists and tables.
fn request_series(blocks: [&str; 3]) {
    let mut d = Decoder::new(Limits::default());
    let req = [
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "www.example.com"),
    ];
    let out = decode(&mut d, blocks[0]);
    assert_eq!(pairs(&out), p(&req));
    assert_eq!(table(&d), p(&[(":authority", "www.example.com")]));
    assert_eq!(d.table_bytes(), 57);

    let out = decode(&mut d, blocks[1]);
    let mut want = req.to_vec();
    want.push(("cache-control", "no-cache"));
    assert_eq!(pairs(&out), p(&want));
    assert_eq!(
        table(&d),
        p(&[
            ("cache-control", "no-cache"),
            (":authority", "www.example.com")
        ])
    );
    assert_eq!(d.table_bytes(), 110);

    let out = decode(&mut d, blocks[2]);
    assert_eq!(
        pairs(&out),
        p(&[
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/index.html"),
            (":authority", "www.example.com"),
            ("custom-key", "custom-value"),
        ])
    );
    assert_eq!(
        table(&d),
        p(&[
            ("custom-key", "custom-value"),
            ("cache-control", "no-cache"),
            (":authority", "www.example.com"),
        ])
    );
    assert_eq!(d.table_bytes(), 164);
}

#[test]
fn c3_requests_without_huffman() {
    request_series([
        "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "8286 84be 5808 6e6f 2d63 6163 6865",
        "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
    ]);
}

#[test]
fn c4_requests_with_huffman() {
    request_series([
        "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        "8286 84be 5886 a8eb 1064 9cbf",
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
    ]);
}

/// C.5 (plain) and C.6 (Huffman): responses with a 256-byte table, causing evictions.
fn response_series(blocks: [&str; 3]) {
    let mut d = Decoder::with_table_size(Limits::default(), 256);
    let date1 = "Mon, 21 Oct 2013 20:13:21 GMT";
    let loc = "https://www.example.com";
    let out = decode(&mut d, blocks[0]);
    assert_eq!(
        pairs(&out),
        p(&[
            (":status", "302"),
            ("cache-control", "private"),
            ("date", date1),
            ("location", loc),
        ])
    );
    assert_eq!(
        table(&d),
        p(&[
            ("location", loc),
            ("date", date1),
            ("cache-control", "private"),
            (":status", "302"),
        ])
    );
    assert_eq!(d.table_bytes(), 222);

    let out = decode(&mut d, blocks[1]);
    assert_eq!(
        pairs(&out),
        p(&[
            (":status", "307"),
            ("cache-control", "private"),
            ("date", date1),
            ("location", loc),
        ])
    );
    assert_eq!(
        table(&d),
        p(&[
            (":status", "307"),
            ("location", loc),
            ("date", date1),
            ("cache-control", "private"),
        ])
    );
    assert_eq!(d.table_bytes(), 222);

    let date2 = "Mon, 21 Oct 2013 20:13:22 GMT";
    let cookie = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
    let out = decode(&mut d, blocks[2]);
    assert_eq!(
        pairs(&out),
        p(&[
            (":status", "200"),
            ("cache-control", "private"),
            ("date", date2),
            ("location", loc),
            ("content-encoding", "gzip"),
            ("set-cookie", cookie),
        ])
    );
    assert_eq!(
        table(&d),
        p(&[
            ("set-cookie", cookie),
            ("content-encoding", "gzip"),
            ("date", date2)
        ])
    );
    assert_eq!(d.table_bytes(), 215);
}

#[test]
fn c5_responses_without_huffman() {
    response_series([
        "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
         2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
         6c65 2e63 6f6d",
        "4803 3330 37c1 c0bf",
        "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
         54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
         5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
         3d31",
    ]);
}

#[test]
fn c6_responses_with_huffman() {
    response_series([
        "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
         2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        "4883 640e ffc1 c0bf",
        "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
         77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
         9587 3160 65c0 03ed 4ee5 b106 3d50 07",
    ]);
}

#[test]
fn huffman_round_trips_every_symbol_and_rejects_bad_padding() {
    let all: Vec<u8> = (0..=255u8).collect();
    let enc = huffman::encode(&all);
    let mut out = Vec::new();
    huffman::decode(&enc, &mut out, 1024).unwrap();
    assert_eq!(out, all);
    // C.4.1's authority, byte-exact both ways.
    assert_eq!(
        huffman::encode(b"www.example.com"),
        hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff")
    );
    // Limit.
    let mut out = Vec::new();
    assert_eq!(
        huffman::decode(&enc, &mut out, 10),
        Err(huffman::HuffmanError::TooLong)
    );
    // Padding of zeros (not an EOS prefix), and a full byte of padding.
    let mut out = Vec::new();
    assert_eq!(
        huffman::decode(&[0x00], &mut out, 10),
        Err(huffman::HuffmanError::BadPadding)
    );
    assert_eq!(
        huffman::decode(&[0xff], &mut Vec::new(), 10),
        Err(huffman::HuffmanError::BadPadding)
    );
    // EOS itself (30 ones) is an error.
    assert_eq!(
        huffman::decode(&[0xff, 0xff, 0xff, 0xff], &mut Vec::new(), 10),
        Err(huffman::HuffmanError::InvalidCode)
    );
}

#[test]
fn unknown_table_resolves_only_entries_inserted_since() {
    // Joined mid-way: index 62 before any insertion is unknown, static fields are known.
    let mut d = Decoder::unknown(Limits::default());
    let mut out = HeaderList::default();
    // :method GET (static 2), index 62 (unknown), :path literal with indexing.
    let mut block = vec![0x82, 0xbe, 0x44, 0x04];
    block.extend_from_slice(b"/a/b");
    d.decode(&block, &mut out).unwrap();
    assert_eq!(pairs(&out), p(&[(":method", "GET"), (":path", "/a/b")]));
    assert_eq!(out.unknown, 1);
    assert!(out.incomplete());
    // The entry inserted since is index 62 now; 63 is still unknown.
    d.decode(&[0xbe, 0xbf], &mut out).unwrap();
    assert_eq!(pairs(&out), p(&[(":path", "/a/b")]));
    assert_eq!(out.unknown, 1);
    // A size update to 0 empties the table: it is known again.
    d.decode(&[0x20, 0x82], &mut out).unwrap();
    assert!(d.table().is_complete());
    let mut out2 = HeaderList::default();
    assert_eq!(d.decode(&[0xbe], &mut out2), Err(HpackError::InvalidIndex));
    // ...and that error made it incomplete again.
    assert!(!d.table().is_complete());
}

#[test]
fn literal_with_unknown_name_forgets_the_table() {
    let mut d = Decoder::unknown(Limits::default());
    let mut out = HeaderList::default();
    // Insert a known entry, then a literal-with-indexing whose name is unknown index 63.
    let mut block = vec![0x44, 0x02];
    block.extend_from_slice(b"/x");
    block.extend_from_slice(&[0x7f, 0x00, 0x01, b'v']); // name index 63 (6-bit prefix: 63+0)
    d.decode(&block, &mut out).unwrap();
    assert_eq!(out.unknown, 1);
    assert!(d.table().is_empty());
}

#[test]
fn list_limits_drop_fields_but_keep_the_table() {
    let limits = Limits {
        max_fields: 2,
        ..Limits::default()
    };
    let mut d = Decoder::new(limits);
    let mut out = HeaderList::default();
    // Three fields, the third inserted into the table.
    let mut block = vec![0x82, 0x84, 0x41, 0x01, b'h'];
    block.push(0xbe);
    assert_eq!(d.decode(&block, &mut out), Err(HpackError::ListTooLarge));
    assert_eq!(out.fields.len(), 2);
    assert_eq!(out.dropped, 2);
    assert_eq!(table(&d), p(&[(":authority", "h")]));
}

#[test]
fn hpack_bomb_costs_an_error_not_memory() {
    // One 4000-byte entry referenced 10,000 times: 40 MB if materialised.
    let mut d = Decoder::new(Limits::default());
    let mut block = vec![0x40, 0x01, b'x', 0x7f, 0x81, 0x1f];
    block.extend(std::iter::repeat_n(b'a', 4000)); // 127 + 0x1f + (0x01 << 7) = 4000? see below
    let mut out = HeaderList::default();
    // 0x7f then 0x81 0x1f: 127 + 1 + (31 << 7) = 4096: too long for the bytes given.
    assert_eq!(d.decode(&block, &mut out), Err(HpackError::Truncated));
    let mut block = vec![0x40, 0x01, b'x', 0x7f, 0xa1, 0x1e]; // 127 + 33 + (30 << 7) = 4000
    block.extend(std::iter::repeat_n(b'a', 4000));
    block.extend(std::iter::repeat_n(0xbe, 10_000));
    let mut d = Decoder::new(Limits::default());
    assert_eq!(d.decode(&block, &mut out), Err(HpackError::ListTooLarge));
    let kept: usize = out.fields.iter().map(|(n, v)| n.len() + v.len()).sum();
    assert!(kept <= Limits::default().max_list_bytes, "{kept}");
    assert!(out.dropped > 9_000);
}

#[test]
fn work_per_input_byte_is_bounded() {
    // HPACK CPU amplification: one 60,000-byte entry, then 4,000 one-byte references to it
    // (§6.1) and 4,000 two-byte literals that reuse its name with indexing (§6.2.1): before,
    // each reference copied the entry (~480 MB of copying for a 68 KB block).
    let mut block = vec![0x3f, 0xe1, 0xff, 0x03]; // table size update to 65,536 (§6.3)
    block.extend([0x40, 0x7f, 0xf9, 0xcb, 0x03]); // literal, new name of 59,000 bytes
    block.extend(std::iter::repeat_n(b'n', 59_000));
    block.extend([0x7f, 0xe1, 0x07]); // value length 127 + 993 = 1,120
    block.extend(std::iter::repeat_n(b'v', 1_120));
    block.extend(std::iter::repeat_n(0xbe, 4_000)); // index 62: the entry
    for _ in 0..4_000 {
        block.extend([0x7e, 0x00]); // literal, indexed name 62, empty value, incremental
    }
    let mut d = Decoder::new(Limits::default());
    d.set_settings_limit(65_536);
    let mut out = HeaderList::default();
    assert_eq!(d.decode(&block, &mut out), Err(HpackError::ListTooLarge));
    assert_eq!(out.fields.len(), 1);
    assert_eq!(
        d.table().len(),
        1,
        "the last insertion is the entry's name, empty value"
    );
    assert!(
        d.copied_bytes() <= block.len() as u64,
        "copied {} bytes for a {}-byte block",
        d.copied_bytes(),
        block.len()
    );
}

#[test]
fn size_updates_follow_settings_and_caps() {
    let mut d = Decoder::new(Limits {
        max_table_bytes: 1000,
        ..Limits::default()
    });
    let mut out = HeaderList::default();
    // 0x3f 0xe1 0x1f: 31 + 97 + (31 << 7) = 4096 > cap 1000.
    assert_eq!(
        d.decode(&[0x3f, 0xe1, 0x1f], &mut out),
        Err(HpackError::TableTooLarge)
    );
    assert_eq!(d.table().capacity(), 1000);
    assert!(!d.table().is_complete());
    // Above the peer's SETTINGS_HEADER_TABLE_SIZE (default 4096): counted, applied.
    let mut d = Decoder::new(Limits::default());
    assert_eq!(
        d.decode(&[0x3f, 0xe1, 0x3f], &mut out), // 31 + 97 + (63 << 7) = 8192
        Err(HpackError::BadSizeUpdate)
    );
    d.set_settings_limit(8192);
    assert_eq!(d.decode(&[0x3f, 0xe1, 0x3f], &mut out), Ok(()));
    // After a field: a protocol error.
    assert_eq!(
        d.decode(&[0x82, 0x20], &mut out),
        Err(HpackError::BadSizeUpdate)
    );
}

#[test]
fn malformed_blocks_are_errors_and_lose_the_table() {
    let cases: [(&[u8], HpackError); 5] = [
        (&[0x80], HpackError::InvalidIndex),
        (&[0xff], HpackError::Truncated),
        (
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            HpackError::IntegerOverflow,
        ),
        (&[0x40, 0x05, b'a'], HpackError::Truncated),
        (&[0x40, 0x81, 0x00, 0x00], HpackError::Huffman),
    ];
    for (block, err) in cases {
        let mut d = Decoder::new(Limits::default());
        d.decode(&[0x41, 0x01, b'h'], &mut HeaderList::default())
            .unwrap();
        let mut out = HeaderList::default();
        assert_eq!(d.decode(block, &mut out), Err(err), "{block:?}");
        assert!(
            !d.table().is_complete() && d.table().is_empty(),
            "{block:?}"
        );
    }
}

#[test]
fn oversized_entry_empties_the_table() {
    let mut t = DynamicTable::new(4096);
    t.insert(b"a"[..].into(), b"b"[..].into());
    t.insert(b"n"[..].into(), [b'v'; 5000][..].into());
    assert!(t.is_empty() && t.is_complete());
    // Incomplete table with a known capacity below the cap: emptied and known again.
    let mut t = DynamicTable::unknown(65_536);
    t.set_capacity(100);
    t.insert(b"n"[..].into(), [b'v'; 200][..].into());
    assert!(t.is_complete());
    assert_eq!(t.get(62), Lookup::Invalid);
}
