//! decode(encode(page)) == page for MH, MR and MMR over random pages, and receiver-style recovery from
//! corrupt data.

use proptest::prelude::*;
use t4::{Coding, DecodeOptions, EncodeOptions, PageRef, decode, encode, stride};

/// A page of random runs (what documents look like to a coder: long runs, some short ones, noise).
fn page(width: u32, height: u32, seed: u64, density: u32) -> Vec<u8> {
    let mut s = seed | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let st = stride(width);
    let mut data = vec![0u8; st * height as usize];
    for y in 0..height as usize {
        let copy = y > 0 && next() % 3 == 0;
        if copy {
            let (a, b) = data.split_at_mut(y * st);
            b[..st].copy_from_slice(&a[(y - 1) * st..]);
            continue;
        }
        let mut x = 0u32;
        let mut black = next() % 2 == 0;
        while x < width {
            let run = 1 + (next() % u64::from(density.max(1))) as u32;
            if black {
                for p in x..(x + run).min(width) {
                    data[y * st + p as usize / 8] |= 0x80 >> (p % 8);
                }
            }
            x += run;
            black = !black;
        }
    }
    data
}

fn codings() -> [Coding; 4] {
    [
        Coding::Mh,
        Coding::Mr { k: 2 },
        Coding::Mr { k: 4 },
        Coding::Mmr,
    ]
}

fn check(width: u32, height: u32, data: &[u8], opts: EncodeOptions) {
    let coded = encode(
        PageRef {
            width,
            height,
            data,
        },
        &opts,
    )
    .expect("encodes");
    let mut d = DecodeOptions::fax(opts.coding, width);
    if !opts.end_marker {
        d.height = Some(height);
    }
    let back = decode(&coded, &d).expect("decodes");
    assert_eq!(
        (back.width, back.stats.height, back.stats.bad_lines),
        (width, height, 0),
        "{opts:?}"
    );
    assert!(back.stats.complete(), "{:?}", back.stats.end);
    assert!(back.data == data, "{opts:?}: pixels differ");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_pages_round_trip(
        width in prop_oneof![Just(1728u32), Just(2048), Just(2432), 1u32..300],
        height in 1u32..40,
        seed in any::<u64>(),
        density in prop_oneof![Just(2u32), Just(12), Just(200), Just(3000)],
        align in any::<bool>(),
        min_bits in prop_oneof![Just(0u32), Just(96), Just(1200)],
        rtc in any::<bool>(),
    ) {
        let data = page(width, height, seed, density);
        for coding in codings() {
            check(width, height, &data, EncodeOptions { coding, eol: true, align_eol: align, min_line_bits: min_bits, end_marker: rtc });
            check(width, height, &data, EncodeOptions { coding, eol: false, align_eol: false, min_line_bits: 0, end_marker: rtc });
        }
    }
}

#[test]
fn blank_black_and_edge_pages_round_trip() {
    for width in [1, 7, 8, 9, 1728, 2432, 5000] {
        let st = stride(width);
        let white = vec![0u8; st * 3];
        let mut black = vec![0xFFu8; st * 3];
        if width % 8 != 0 {
            for y in 0..3 {
                black[y * st + st - 1] &= 0xFF << (8 - width % 8);
            }
        }
        for coding in codings() {
            check(width, 3, &white, EncodeOptions::fax(coding));
            check(width, 3, &black, EncodeOptions::fax(coding));
        }
    }
}

#[test]
fn minimum_line_length_and_aligned_eols_are_honoured() {
    let data = vec![0u8; stride(1728) * 10];
    let coded = encode(
        PageRef {
            width: 1728,
            height: 10,
            data: &data,
        },
        &EncodeOptions {
            min_line_bits: 400,
            ..EncodeOptions::fax(Coding::Mh)
        },
    )
    .expect("e");
    // A white line is 9 bits of codes plus a 12-bit EOL; padded to 400 bits each (the first EOL aside).
    assert!(coded.len() * 8 >= 9 * 400, "{} bytes", coded.len());
    let aligned = encode(
        PageRef {
            width: 1728,
            height: 10,
            data: &data,
        },
        &EncodeOptions {
            align_eol: true,
            ..EncodeOptions::fax(Coding::Mh)
        },
    )
    .expect("e");
    // Every EOL (0x001 in 12 bits) ends a byte: the byte pattern 0x?0 0x01 appears per line.
    assert_eq!(
        aligned
            .windows(2)
            .filter(|w| w[0] & 0x0F == 0 && w[1] == 1)
            .count(),
        10 + 6
    );
}

#[test]
fn corrupt_lines_are_replaced_counted_and_decoding_resumes() {
    let (width, height) = (1728u32, 120u32);
    let data = page(width, height, 42, 40);
    for coding in [Coding::Mh, Coding::Mr { k: 4 }] {
        let coded = encode(
            PageRef {
                width,
                height,
                data: &data,
            },
            &EncodeOptions {
                align_eol: true,
                ..EncodeOptions::fax(coding)
            },
        )
        .expect("e");
        let mut bad = coded.clone();
        // Damage two places in the middle of the page.
        for at in [bad.len() / 3, bad.len() / 2] {
            bad[at] ^= 0x5A;
            bad[at + 1] ^= 0xA5;
        }
        let back = decode(&bad, &DecodeOptions::fax(coding, width)).expect("decodes");
        assert!(
            back.stats.bad_lines >= 2,
            "{coding:?}: {} bad",
            back.stats.bad_lines
        );
        assert!(
            back.stats.max_consecutive_bad >= 1
                && back.stats.max_consecutive_bad <= back.stats.bad_lines
        );
        assert_eq!(back.stats.end, t4::PageEnd::Terminator, "RTC still found");
        assert!(
            (height - 4..=height + 2).contains(&back.stats.height),
            "{coding:?}: {} lines",
            back.stats.height
        );
        let st = stride(width);
        let same = (0..back.stats.height.min(height) as usize)
            .filter(|y| back.data[y * st..(y + 1) * st] == data[y * st..(y + 1) * st])
            .count();
        assert!(
            same as u32 >= height - back.stats.bad_lines - 8,
            "{coding:?}: only {same} lines intact"
        );
    }
}

#[test]
fn truncated_and_garbage_input_never_panics() {
    let data = page(1728, 30, 7, 30);
    for coding in codings() {
        let coded = encode(
            PageRef {
                width: 1728,
                height: 30,
                data: &data,
            },
            &EncodeOptions::fax(coding),
        )
        .expect("e");
        for cut in [0, 1, 5, coded.len() / 2, coded.len() - 1] {
            let _ = decode(&coded[..cut], &DecodeOptions::fax(coding, 1728));
        }
        let garbage: Vec<u8> = (0..4000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let r = decode(
            &garbage,
            &DecodeOptions {
                height: Some(50),
                ..DecodeOptions::fax(coding, 1728)
            },
        );
        if let Ok(d) = r {
            assert_eq!(d.stats.height, 50);
        }
    }
}

/// A receiver must tell a page that ended (RTC, EOFB) from one whose data stopped early or broke: only the
/// first may be confirmed (T.30 ECM: a truncated page confirmed with MCF was a real bug).
#[test]
fn how_a_page_ended_is_reported() {
    let (width, height) = (1728u32, 200u32);
    let data = page(width, height, 9, 40);
    for coding in codings() {
        let coded = encode(
            PageRef {
                width,
                height,
                data: &data,
            },
            &EncodeOptions::fax(coding),
        )
        .expect("encodes");
        let whole = decode(&coded, &DecodeOptions::fax(coding, width)).expect("decodes");
        assert_eq!(whole.stats.end, t4::PageEnd::Terminator, "{coding:?}");
        assert!(whole.stats.complete() && whole.stats.first_bad.is_none());

        // Cut in the middle: the data ends, and at most the cut line is bad (it is the last one).
        let cut = decode(
            &coded[..coded.len() / 2],
            &DecodeOptions::fax(coding, width),
        )
        .expect("decodes");
        assert_eq!(cut.stats.end, t4::PageEnd::DataEnd, "{coding:?}");
        assert!(!cut.stats.complete());
        assert!(cut.stats.height < height);
        if let Some(r) = cut.stats.first_bad {
            assert_eq!(
                r + 1,
                cut.stats.height,
                "{coding:?}: only the cut line is bad"
            );
        }
    }
    // T.6 has no resynchronisation: garbage in the middle loses the rest of the page, and says so.
    let coded = encode(
        PageRef {
            width,
            height,
            data: &data,
        },
        &EncodeOptions::fax(Coding::Mmr),
    )
    .expect("encodes");
    let mut bad = coded.clone();
    let at = bad.len() / 3;
    bad[at..at + 8].fill(0);
    let back = decode(&bad, &DecodeOptions::fax(Coding::Mmr, width)).expect("decodes");
    assert_eq!(back.stats.end, t4::PageEnd::Error);
    assert_eq!(back.stats.first_bad, Some(back.stats.height - 1));
    assert!(back.stats.height < height);
}
