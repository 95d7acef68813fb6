//! The zstd decoder against the host's `zstd` (levels, options, block kinds) and hand-made
//! frames with hostile sequences.

use std::vec::Vec;
use std::{eprintln, vec};

use super::*;
use crate::kernel::testutil::{Rng, run_tool, synthetic_kernel};

/// Data sets: code-like, long runs (RLE blocks and repeat offsets), random (raw blocks), tiny.
fn samples() -> Vec<(&'static str, Vec<u8>)> {
    let mut r = Rng(0x2545_f491_4f6c_dd1d);
    let random: Vec<u8> = (0..200_000).map(|_| r.next() as u8).collect();
    let mut runs = vec![0u8; 150_000];
    runs.extend((0..100_000u32).map(|i| (i / 7000) as u8));
    runs.extend(b"abcabcabcabd".repeat(5000));
    runs.extend(&random[..30_000]);
    runs.extend(vec![0xffu8; 300_000]);
    // Slices of a random kilobyte joined by one byte: literals all 'Q' (RLE literals).
    let mut joined = random[..1000].to_vec();
    while joined.len() < 200_000 {
        let at = r.below(900);
        joined.extend_from_slice(&random[at..at + 20 + r.below(80)]);
        joined.push(b'Q');
    }
    // A few symbols, skewed: small Huffman trees (weights stored directly).
    let text: Vec<u8> = (0..100_000)
        .map(|_| b"eeeeeeeetaoinshr"[r.below(16)] + u8::from(r.below(64) == 0))
        .collect();
    vec![
        ("kernel", synthetic_kernel(300_000)),
        ("runs", runs),
        ("joined", joined),
        ("text", text),
        ("random", random),
        ("empty", vec![]),
        ("one byte", vec![42]),
        ("short", b"hello, hello, hello zstd".to_vec()),
    ]
}

/// Our output for `frame`, in a slice exactly as large as the content.
fn ours(frame: &[u8], len: usize) -> Result<Vec<u8>, DecompressError> {
    let mut out = vec![0u8; len];
    let n = decompress_into(frame, &mut out)?;
    out.truncate(n);
    Ok(out)
}

#[test]
fn levels_and_options_match_the_host_tool() {
    let options: &[&[&str]] = &[
        &["-1"],
        &["-3"],
        &["-19"],
        &["-22", "--ultra"],
        &["--long=27", "-3"],
        &["--no-check", "-5"],
        &["--content-size", "--stream-size=SIZE", "-9"],
        &["--no-content-size", "-9"],
        &["--target-compressed-block-size=1024", "-7"],
        &["--fast=5"],
    ];
    let mut checked = 0;
    for (name, data) in samples() {
        for opts in options {
            let size = std::format!("--stream-size={}", data.len());
            let mut args: Vec<&str> = opts
                .iter()
                .map(|&a| if a == "--stream-size=SIZE" { &size } else { a })
                .collect();
            args.extend(["-q", "-c"]);
            let Some(frame) = run_tool("zstd", &args, &data) else {
                eprintln!("SKIP: no zstd");
                return;
            };
            let reference = run_tool("zstd", &["-dqc"], &frame).unwrap();
            assert_eq!(reference, data, "{name} {opts:?}: the host tool disagrees");
            let got = ours(&frame, data.len()).unwrap_or_else(|e| panic!("{name} {opts:?}: {e}"));
            assert!(got == reference, "{name} {opts:?}: output differs");
            if !data.is_empty() {
                let e = ours(&frame, data.len() - 1).unwrap_err();
                assert!(
                    matches!(e.kind, ErrorKind::OutputTooSmall { .. }),
                    "{name} {opts:?}: {e}"
                );
            }
            checked += 1;
        }
    }
    eprintln!("{checked} frames decoded as the host tool does");
}

/// Raw and RLE blocks written by hand, and a single-segment frame.
#[test]
fn raw_rle_and_single_segment_frames() {
    // Single segment, 1-byte content size 7; a raw block "abc" then a last RLE block of 4 'z'.
    let mut f = MAGIC.to_le_bytes().to_vec();
    f.extend([0x20, 7]);
    f.extend(block(false, 0, 3));
    f.extend(b"abc");
    f.extend(block(true, 1, 4));
    f.push(b'z');
    assert_eq!(ours(&f, 7).unwrap(), b"abczzzz");
    let e = ours(&f, 6).unwrap_err();
    assert_eq!(
        e.kind,
        ErrorKind::OutputTooSmall {
            room: 6,
            needed: Some(7)
        }
    );
}

/// A block header (RFC 8878 3.1.1.2).
fn block(last: bool, ty: u32, size: usize) -> [u8; 3] {
    let v = u32::from(last) | ty << 1 | (size as u32) << 3;
    let b = v.to_le_bytes();
    [b[0], b[1], b[2]]
}

/// A frame (1 KiB window, no content size, no checksum) of `raw` bytes in a raw block, then a
/// compressed block: raw literals `lits` and one sequence whose three codes are RLE tables
/// (no state bits), its bitstream `bits` holding only the extra bits.
fn hostile(raw: usize, lits: &[u8], codes: [u8; 3], bits: &[u8]) -> Vec<u8> {
    let mut f = MAGIC.to_le_bytes().to_vec();
    f.extend([0x00, 0x00]);
    if raw > 0 {
        f.extend(block(false, 0, raw));
        f.extend((0..raw).map(|i| i as u8));
    }
    let mut b = vec![(lits.len() as u8) << 3];
    b.extend(lits);
    // One sequence; LL, OF and ML modes RLE; codes LL, OF, ML.
    b.extend([1, 0x54]);
    b.extend(codes);
    b.extend(bits);
    f.extend(block(true, 2, b.len()));
    f.extend(b);
    f
}

#[test]
fn hand_made_sequences() {
    // LL code 4 (4 literals), OF code 2 with extra bits 3 (value 7: offset 4), ML code 3 (6).
    let f = hostile(0, b"abcd", [4, 2, 3], &[0b111]);
    assert_eq!(ours(&f, 100).unwrap(), b"abcdabcdab");
    // Offset 1 through repeat offset 1 with literals; a long overlapping match.
    let f = hostile(0, b"ab", [2, 0, 31], &[1]);
    assert_eq!(ours(&f, 100).unwrap().len(), 36);
    assert!(ours(&f, 100).unwrap()[1..].iter().all(|&b| b == b'b'));
}

/// Literals the host tool rarely writes: RLE, a Huffman tree with its weights stored directly,
/// then treeless literals in 4 streams reusing that tree.
#[test]
fn hand_made_literals() {
    let mut f = MAGIC.to_le_bytes().to_vec();
    f.extend([0x00, 0x00]);
    // 5 RLE literals 'x', one sequence (LL 5, offset 2 via OF code 2 extra 1, ML 3).
    let b = [5 << 3 | 1, b'x', 1, 0x54, 5, 2, 0, 0b101];
    f.extend(block(false, 2, b.len()));
    f.extend(b);
    // One weight given directly (symbol 0: weight 1), so symbol 1 has weight 1 too: 1-bit
    // codes, 0 for 0x00, 1 for 0x01. One stream: 1, 0, 1, 1 then the end mark; no sequences.
    let lit_header = |ty: u32, sf: u32, regen: u32, size: u32| {
        let h = ty | sf << 2 | regen << 4 | size << 14;
        [h as u8, (h >> 8) as u8, (h >> 16) as u8]
    };
    f.extend(block(false, 2, 3 + 3 + 1));
    f.extend(lit_header(2, 0, 4, 3));
    f.extend([128, 0x10, 0b1_1011, 0]);
    // Treeless, 4 streams of 2, 2, 2 and 2 literals; jump table 1, 1, 1.
    f.extend(block(true, 2, 3 + 10 + 1));
    f.extend(lit_header(3, 1, 8, 10));
    f.extend([1, 0, 1, 0, 1, 0, 0b110, 0b101, 0b100, 0b111, 0]);
    let want = b"xxxxxxxx\x01\x00\x01\x01\x01\x00\x00\x01\x00\x00\x01\x01";
    assert_eq!(ours(&f, 100).unwrap(), want);
    // The last stream one bit short: its literals are read past its start.
    let n = f.len();
    f[n - 2] = 0b11;
    let e = ours(&f, 100).unwrap_err();
    assert_eq!(
        e.kind,
        ErrorKind::Corrupt("Huffman stream not consumed exactly")
    );
}

#[test]
fn hostile_sequences_are_precise_errors() {
    let corrupt = |f: &[u8], room: usize| {
        let e = ours(f, room).unwrap_err();
        match e.kind {
            ErrorKind::Corrupt(why) => (e.at, why),
            _ => panic!("{e}"),
        }
    };
    // OF code 4, extra 0: value 16, offset 13, with 4 bytes written.
    let f = hostile(0, b"abcd", [4, 4, 0], &[0x10]);
    assert_eq!(
        corrupt(&f, 100),
        (6, "match offset beyond the output so far")
    );
    // 4 literals asked for, 2 in the section.
    let f = hostile(0, b"ab", [4, 0, 0], &[1]);
    assert_eq!(corrupt(&f, 100), (6, "literal length past the literals"));
    // A 34-byte match past a 20-byte output.
    let f = hostile(0, b"abcd", [4, 0, 31], &[1]);
    let e = ours(&f, 20).unwrap_err();
    assert_eq!(
        (e.at, e.kind),
        (
            6,
            ErrorKind::OutputTooSmall {
                room: 20,
                needed: None
            }
        )
    );
    // Offset 1300 after 1504 bytes, beyond the 1 KiB window (OF code 10, extra 279).
    let f = hostile(1500, b"abcd", [4, 10, 0], &[0x17, 0x05]);
    assert_eq!(
        corrupt(&f, 4000),
        (6 + 3 + 1500, "match offset beyond the window")
    );
    // Repeat offset 1 minus 1 (OF code 1, extra 1, no literals): offset 0.
    let f = hostile(0, b"", [0, 1, 0], &[0b11]);
    assert_eq!(corrupt(&f, 100), (6, "match offset 0"));
    // A bit left over; no end mark.
    let f = hostile(0, b"abcd", [4, 2, 3], &[0b1110]);
    assert_eq!(
        corrupt(&f, 100),
        (6, "sequence bitstream not consumed exactly")
    );
    let f = hostile(0, b"abcd", [4, 2, 3], &[0]);
    assert_eq!(corrupt(&f, 100), (6, "bitstream without its end mark"));
    // A repeat-mode table in the first block; reserved mode bits.
    let mut f = hostile(0, b"abcd", [4, 2, 3], &[0b111]);
    f[6 + 3 + 5 + 1] = 0xfc;
    assert_eq!(
        corrupt(&f, 100),
        (6, "repeated sequence table without a previous one")
    );
    f[6 + 3 + 5 + 1] = 0x55;
    assert_eq!(
        corrupt(&f, 100),
        (6, "reserved bits in the sequence compression modes")
    );
}

#[test]
fn dictionary_frames_are_refused() {
    for (fhd, id) in [(0x01u8, &[7u8][..]), (0x02, &[7, 0]), (0x23, &[1, 0, 0, 0])] {
        let single = fhd & 0x20 != 0;
        let mut f = MAGIC.to_le_bytes().to_vec();
        f.push(fhd);
        if !single {
            f.push(0);
        }
        let at = f.len();
        f.extend(id);
        if single {
            f.push(0); // content size 0
        }
        f.extend(block(true, 0, 0));
        let e = ours(&f, 100).unwrap_err();
        assert_eq!(
            (e.at, e.kind),
            (at, ErrorKind::Unsupported("zstd dictionary"))
        );
        // A dictionary ID of 0 means none.
        f[at..at + id.len()].fill(0);
        assert_eq!(ours(&f, 100), Ok(vec![]));
    }
}

#[test]
fn decoder_state_is_small() {
    // The tables are the only heap (two boxes); literals are never staged.
    const { assert!(STATE_BYTES <= 16 * 1024) };
    const { assert!(core::mem::size_of::<Decoder>() <= 128) };
    eprintln!(
        "zstd decoder: {STATE_BYTES} B of tables on the heap, {} B inline",
        core::mem::size_of::<Decoder>()
    );
}
