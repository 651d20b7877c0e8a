//! The page decoders on arbitrary coded data, as a fax receiver sees it: MH, MR and MMR, with and without a
//! known height. Never a panic; a decoded page has exactly its size, its bad-line counts are consistent, and
//! encoding the decoded page then decoding that gives the same page with no bad lines.
#![no_main]

use libfuzzer_sys::fuzz_target;
use t4::{decode, encode, Coding, DecodeOptions, EncodeOptions, PageRef};

fuzz_target!(|data: &[u8]| {
    let Some((&head, coded)) = data.split_first() else { return };
    let coding = match head % 4 {
        0 => Coding::Mh,
        1 => Coding::Mr { k: 2 },
        2 => Coding::Mr { k: 4 },
        _ => Coding::Mmr,
    };
    let width = [1728, 2048, 2432, 17, 1][usize::from(head >> 2) % 5];
    let mut o = DecodeOptions::fax(coding, width);
    o.max_height = 512;
    if head & 0x80 != 0 {
        o.height = Some(64);
    }
    if head & 0x40 != 0 && coding == Coding::Mh {
        o.aligned_rows = true;
    }
    let Ok(page) = decode(coded, &o) else { return };
    let s = page.stats;
    assert_eq!(page.data.len(), t4::stride(page.width) * s.height as usize);
    assert!(s.height <= 512);
    assert!(s.max_consecutive_bad <= s.bad_lines && s.bad_lines <= s.height);
    assert!(s.first_bad.is_none() == (s.bad_lines == 0) && s.first_bad.is_none_or(|r| r < s.height));
    let re = encode(
        PageRef { width: page.width, height: s.height, data: &page.data },
        &EncodeOptions::fax(coding),
    )
    .expect("a decoded page encodes");
    let back = decode(&re, &DecodeOptions { max_height: 512, ..DecodeOptions::fax(coding, width) }).expect("our coding decodes");
    assert_eq!(back.stats.bad_lines, 0);
    assert!(back.data == page.data, "re-encoding changed the page");
});
