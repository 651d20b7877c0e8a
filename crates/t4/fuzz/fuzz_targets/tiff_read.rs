//! The TIFF reader on arbitrary bytes, under tight limits: it must refuse or read, never panic or allocate
//! past its limits, and whatever it reads must write back as TIFF-F and read again to the same bitmaps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use t4::tiff::{self, ReadLimits, WriteOptions, WritePage};
use t4::Coding;

fuzz_target!(|data: &[u8]| {
    let limits = ReadLimits { max_pages: 4, max_pixels: 1 << 22 };
    let Ok(pages) = tiff::read(data, &limits) else { return };
    for p in &pages {
        assert_eq!(p.data.len(), t4::stride(p.width) * p.height as usize);
    }
    let write: Vec<WritePage<'_>> = pages
        .iter()
        .map(|p| WritePage {
            page: p.as_page(),
            x_dpi: 204.0,
            y_dpi: 196.0,
            bad_fax_lines: None,
            consecutive_bad_fax_lines: None,
            clean_fax_data: None,
        })
        .collect();
    let coding = [None, Some(Coding::Mh), Some(Coding::Mr { k: 4 }), Some(Coding::Mmr)][data.len() % 4];
    let out = tiff::write(&write, &WriteOptions { coding, software: None, date_time: None }).expect("pages read are writable");
    let again = tiff::read(&out, &limits).expect("our own file reads");
    assert_eq!(again.len(), pages.len());
    for (a, b) in again.iter().zip(&pages) {
        assert_eq!((a.width, a.height), (b.width, b.height));
        assert!(a.data == b.data, "round trip changed a page");
    }
});
