//! The document loader on arbitrary bytes: sniff, estimate the check's cost from the headers (the JPEG
//! marker walk among them), check, load under tight limits, render every page at standard resolution. Any
//! panic or runaway allocation is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use render::{Limits, LoadOptions, PageSpec, PaperSize, Resolution, check, check_cost, load};

fuzz_target!(|data: &[u8]| {
    let options = LoadOptions {
        limits: Limits {
            max_input_bytes: 1 << 20,
            max_pages: 8,
            max_image_pixels: 4_000_000,
        },
        ..LoadOptions::default()
    };
    let _ = check_cost(data, &options);
    let _ = check(data.to_vec().into(), &options);
    if let Ok(doc) = load(data, &options) {
        let spec = PageSpec::new(Resolution::Standard, PaperSize::A4);
        doc.render_all(&spec, |_, page| {
            if let Ok(p) = page {
                assert_eq!(p.data.len(), p.stride() * p.height as usize);
            }
            true
        });
    }
});
