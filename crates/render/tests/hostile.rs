//! Hostile input: typed errors, never a panic, bounded memory.

mod common;

use render::{Error, Format, Limits, LoadOptions, PageSpec, load};

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
