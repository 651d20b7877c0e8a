//! Hostile input: typed errors, never a panic, bounded memory.

mod common;

use render::{Error, Format, Limits, LoadOptions, PageSpec, check_cost, load};

/// Loads `name` from tests/data/hostile and checks the outcome; documents that load must
/// render every page without panicking.
fn check(name: &str, options: &LoadOptions, expect: impl Fn(&Result<(), Error>) -> bool) {
    let bytes = common::data(&format!("hostile/{name}"));
    let outcome = load(&bytes, options).map(|doc| {
        doc.render_all(&PageSpec::default(), |_, page| {
            // Rendering a page that loaded may fail, but only with a typed error.
            if let Ok(p) = page {
                assert_eq!(p.data.len(), p.stride() * p.height as usize);
            }
            true
        });
    });
    assert!(expect(&outcome), "{name}: unexpected outcome {outcome:?}");
}

/// Expects a `Corrupt` error for `format`.
fn corrupt(format: Format) -> impl Fn(&Result<(), Error>) -> bool {
    move |r| matches!(r, Err(Error::Corrupt { format: f, .. }) if *f == format)
}

fn defaults() -> LoadOptions {
    LoadOptions::default()
}

#[test]
fn corrupt_and_truncated_pdfs() {
    check("garbage.pdf", &defaults(), corrupt(Format::Pdf));
    check("deep-nesting.pdf", &defaults(), corrupt(Format::Pdf));
    // The first half of sample.pdf still holds both pages: hayro rebuilds the xref.
    check("truncated.pdf", &defaults(), Result::is_ok);
    check("deep-save.pdf", &defaults(), Result::is_ok);
    check("huge-mediabox.pdf", &defaults(), Result::is_ok);
}

#[test]
fn encrypted_pdf_with_a_user_password_is_refused() {
    check("encrypted.pdf", &defaults(), |r| {
        matches!(r, Err(Error::Encrypted(_)))
    });
}

#[test]
fn documents_without_pages() {
    for name in ["zero-pages.pdf", "page-loop.pdf", "bad-mediabox.pdf"] {
        check(name, &defaults(), |r| {
            matches!(
                r,
                Err(Error::NoPages {
                    format: Format::Pdf
                })
            )
        });
    }
}

#[test]
fn decompression_bombs_hit_the_pixel_limit() {
    let too_large = |r: &Result<(), Error>| matches!(r, Err(Error::ImageTooLarge { .. }));
    check("bomb.png", &defaults(), too_large);
    check("bomb.tif", &defaults(), too_large);
    check("image-bomb.pdf", &defaults(), too_large);
    // 36 megapixels in 48 KB: fine by default, refused under a 10-megapixel limit.
    check("white6000.png", &defaults(), Result::is_ok);
    let tight = LoadOptions {
        limits: Limits {
            max_image_pixels: 10_000_000,
            ..Limits::default()
        },
        ..defaults()
    };
    check("white6000.png", &tight, too_large);
}

#[test]
fn broken_pictures() {
    check("truncated.png", &defaults(), corrupt(Format::Png));
    check("truncated.jpg", &defaults(), corrupt(Format::Jpeg));
    check("truncated.gif", &defaults(), corrupt(Format::Gif));
    check("loop.tif", &defaults(), corrupt(Format::Tiff));
    check("binary.bin", &defaults(), |r| {
        matches!(r, Err(Error::UnknownFormat))
    });
}

#[test]
fn input_and_page_limits() {
    assert!(matches!(load(b"", &defaults()), Err(Error::Empty)));
    let small = LoadOptions {
        limits: Limits {
            max_input_bytes: 100,
            ..Limits::default()
        },
        ..defaults()
    };
    assert!(matches!(
        load(&common::data("sample.pdf"), &small),
        Err(Error::InputTooLarge { limit: 100, .. })
    ));
    let one_page = LoadOptions {
        limits: Limits {
            max_pages: 1,
            ..Limits::default()
        },
        ..defaults()
    };
    assert!(matches!(
        load(&common::data("sample.pdf"), &one_page),
        Err(Error::TooManyPages { pages: 2, limit: 1 })
    ));
    let text = "line\n".repeat(200);
    assert!(matches!(
        load(text.as_bytes(), &one_page),
        Err(Error::TooManyPages { limit: 1, .. })
    ));
}

#[test]
fn every_prefix_of_a_pdf_fails_cleanly() {
    // Truncation at any point must give a document or a typed error, never a panic.
    let pdf = common::data("sample.pdf");
    for len in (1..pdf.len()).step_by(97) {
        if let Ok(doc) = load(&pdf[..len], &defaults()) {
            for i in 0..doc.page_count() {
                if let Ok(page) = doc.render_page(i, &PageSpec::default()) {
                    assert_eq!((page.width, page.height), (1728, 2292), "prefix {len}");
                }
            }
        }
    }
}

/// A bilevel TIFF of 64 × 1 pixels whose one strip is one byte long instead of eight.
fn short_strip_tiff() -> Vec<u8> {
    let mut b = b"II*\0".to_vec();
    b.extend_from_slice(&8u32.to_le_bytes());
    let entries: [(u16, u16, u32, u32); 6] = [
        (256, 3, 1, 64),
        (257, 3, 1, 1),
        (259, 3, 1, 1),
        (273, 4, 1, 8 + 2 + 6 * 12 + 4),
        (278, 3, 1, 1),
        (279, 4, 1, 1),
    ];
    b.extend_from_slice(&6u16.to_le_bytes());
    for (tag, ty, count, value) in entries {
        for part in [
            &tag.to_le_bytes()[..],
            &ty.to_le_bytes(),
            &count.to_le_bytes(),
            &value.to_le_bytes(),
        ] {
            b.extend_from_slice(part);
        }
    }
    b.extend_from_slice(&0u32.to_le_bytes());
    b.push(0xAA);
    b
}

#[test]
fn check_decodes_what_load_defers() {
    let tiff = short_strip_tiff();
    assert!(
        load(&tiff, &defaults()).is_ok(),
        "loading walks the directories only"
    );
    let checked = render::check(tiff.into(), &defaults());
    assert!(
        matches!(&checked, Err(Error::Corrupt { format: Format::Tiff, detail }) if detail.contains("strip")),
        "{checked:?}"
    );
    let sample = common::data("sample.pdf");
    let pages = load(&sample, &defaults()).expect("pdf").page_count();
    let checked = render::check(sample.into(), &defaults()).expect("pdf");
    assert_eq!((checked.format, checked.pages), (Format::Pdf, pages));
}

#[test]
fn check_cost_bounds_the_decode_from_the_header() {
    // 36 megapixels of grey: the decoded picture is at least 36 MB, and the estimate not wildly more.
    let png = common::data("hostile/white6000.png");
    let cost = check_cost(&png, &defaults());
    assert!((36_000_000..=100_000_000).contains(&cost), "{cost}");
    // Over the pixel limit: refused before decoding, so it costs (almost) nothing.
    assert!(check_cost(&common::data("hostile/bomb.png"), &defaults()) <= 2 << 20);
    assert!(check_cost(b"not a document\x00", &defaults()) <= 2 << 20);
}
