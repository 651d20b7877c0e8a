//! hayro's rendering agrees with ghostscript's, pixel by pixel, on a PDF ghostscript made.

mod common;

use render::{LoadOptions, Page, PageSpec, PaperSize, PdfBackend, Resolution, load};

/// Black pixels both renderers agree on, over black pixels either has (intersection over
/// union), and the share of all pixels that are equal.
fn agreement(a: &Page, b: &Page) -> (f64, f64) {
    assert_eq!((a.width, a.height), (b.width, b.height));
    let (mut both, mut either, mut differ) = (0u64, 0u64, 0u64);
    for (x, y) in a.data.iter().zip(&b.data) {
        both += u64::from((x & y).count_ones());
        either += u64::from((x | y).count_ones());
        differ += u64::from((x ^ y).count_ones());
    }
    let total = u64::from(a.width) * u64::from(a.height);
    (
        both as f64 / either.max(1) as f64,
        1.0 - differ as f64 / total as f64,
    )
}

/// Black pixels within `r` pixels of a black pixel in the other page, as a share of all
/// black pixels: forgives the one-pixel edge placement differences of two rasterizers.
fn near_agreement(a: &Page, b: &Page, r: i64) -> f64 {
    let near = |p: &Page, x: u32, y: u32| {
        (-r..=r).any(|dy| {
            (-r..=r).any(|dx| {
                let (nx, ny) = (i64::from(x) + dx, i64::from(y) + dy);
                nx >= 0 && ny >= 0 && p.get(nx as u32, ny as u32)
            })
        })
    };
    let (mut matched, mut total) = (0u64, 0u64);
    for (p, q) in [(a, b), (b, a)] {
        for y in 0..p.height {
            for x in 0..p.width {
                if p.get(x, y) {
                    total += 1;
                    matched += u64::from(near(q, x, y));
                }
            }
        }
    }
    matched as f64 / total.max(1) as f64
}

/// The same PDF loaded with the hayro and the ghostscript backend.
fn both_backends(pdf: &[u8]) -> (render::Document, render::Document) {
    let hayro = load(pdf, &LoadOptions::default()).expect("hayro loads");
    let gs = load(
        pdf,
        &LoadOptions {
            pdf_backend: PdfBackend::ghostscript(),
            ..LoadOptions::default()
        },
    )
    .expect("gs loads");
    (hayro, gs)
}

#[test]
fn hayro_matches_ghostscript_on_sample_pdf() {
    if !common::have_gs() {
        return;
    }
    let pdf = common::data("sample.pdf");
    let (hayro, gs) = both_backends(&pdf);
    assert_eq!(gs.page_count(), 2);
    for res in [Resolution::Standard, Resolution::Fine, Resolution::R300] {
        let spec = PageSpec::new(res, PaperSize::A4);
        for i in 0..2 {
            let a = hayro.render_page(i, &spec).expect("hayro renders");
            let b = gs.render_page(i, &spec).expect("gs renders");
            let (iou, equal) = agreement(&a, &b);
            let near = near_agreement(&a, &b, 1);
            eprintln!(
                "{res:?} page {i}: black {} vs {}, IoU {iou:.3}, equal pixels {equal:.5}, within 1 px {near:.4}",
                a.black_pixels(),
                b.black_pixels()
            );
            // Measured at standard/fine/300: IoU 0.72–0.88 and 98.3–99.3% of pixels equal
            // (glyph and 1 pt line edges land one pixel apart; ghostscript's stroke
            // adjustment draws thin lines thicker), and 99.6–100% of black pixels lie
            // within one pixel of the other renderer's black.
            assert!(
                equal > 0.98,
                "{res:?} page {i}: only {equal} of pixels equal"
            );
            assert!(iou > 0.65, "{res:?} page {i}: IoU {iou}");
            assert!(near > 0.99, "{res:?} page {i}: {near} within 1 px");
        }
    }
}

#[test]
fn missing_ghostscript_is_a_clear_error() {
    let err = load(
        &common::data("sample.pdf"),
        &LoadOptions {
            pdf_backend: PdfBackend::Ghostscript {
                program: "/nonexistent/gs".into(),
                timeout: std::time::Duration::from_secs(5),
            },
            ..LoadOptions::default()
        },
    )
    .expect_err("no such program");
    assert!(
        matches!(err, render::Error::GhostscriptMissing { .. }),
        "{err}"
    );
}

#[test]
fn both_backends_shrink_an_a4_page_onto_letter_alike() {
    if !common::have_gs() {
        return;
    }
    let pdf = common::data("sample.pdf");
    let spec = PageSpec::new(Resolution::Fine, PaperSize::Letter);
    let (hayro, gs) = both_backends(&pdf);
    let a = hayro.render_page(0, &spec).expect("hayro renders");
    let b = gs.render_page(0, &spec).expect("gs renders");
    assert_eq!((b.width, b.height), (1728, 2156));
    // A4 is taller than Letter: hayro shrinks the page while rasterizing, the gs backend
    // resamples gs's true-size bitmap; both by 2156/2292 to the same place.
    let near = near_agreement(&a, &b, 1);
    eprintln!("Letter: within 1 px {near:.4}");
    assert!(near > 0.97, "{near}");
}

#[test]
fn ghostscript_backend_types_its_failures() {
    if !common::have_gs() {
        return;
    }
    let gs = LoadOptions {
        pdf_backend: PdfBackend::ghostscript(),
        ..LoadOptions::default()
    };
    let load_hostile = |name: &str| load(&common::data(&format!("hostile/{name}")), &gs);
    assert!(matches!(
        load_hostile("encrypted.pdf"),
        Err(render::Error::Encrypted(_))
    ));
    assert!(matches!(
        load_hostile("garbage.pdf"),
        Err(render::Error::Corrupt {
            format: render::Format::Pdf,
            ..
        })
    ));
    assert!(matches!(
        load_hostile("zero-pages.pdf"),
        Err(render::Error::NoPages { .. })
    ));
}

/// A two-page PostScript memo: a filled box on the first page (1 to 3 inches from the left, 1 to 2
/// inches from the top of an A4 page), a line of text on the second.
const MEMO_PS: &str = "%!PS-Adobe-3.0\n%%Pages: 2\n<< /PageSize [595 842] >> setpagedevice\n\
    72 698 144 72 rectfill showpage\n\
    /Helvetica findfont 24 scalefont setfont 72 700 moveto (Second page) show showpage\n";

/// PostScript is recognised, never read as text, and converted to a PDF (through ghostscript) whose pages
/// are the program's: the box lands where the PostScript put it.
#[test]
fn postscript_becomes_the_pdf_ghostscript_makes_of_it() {
    assert_eq!(
        render::sniff(MEMO_PS.as_bytes()),
        Some(render::Format::PostScript)
    );
    assert!(matches!(
        load(MEMO_PS.as_bytes(), &LoadOptions::default()),
        Err(render::Error::PostScript)
    ));
    let missing = render::postscript_to_pdf(
        MEMO_PS.as_bytes(),
        "/nonexistent/gs",
        std::time::Duration::from_secs(5),
        &render::Limits::default(),
    );
    assert!(
        matches!(missing, Err(render::Error::GhostscriptMissing { .. })),
        "{missing:?}"
    );
    if !common::have_gs() {
        return;
    }
    let pdf = render::postscript_to_pdf(
        MEMO_PS.as_bytes(),
        "gs",
        std::time::Duration::from_secs(60),
        &render::Limits::default(),
    )
    .expect("converted");
    let doc = load(&pdf, &LoadOptions::default()).expect("the PDF loads");
    assert_eq!(doc.page_count(), 2);
    let spec = PageSpec::new(Resolution::Fine, PaperSize::A4);
    let first = doc.render_page(0, &spec).expect("page 1");
    // The ink's bounding box, and how much of it is ink.
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for y in 0..first.height {
        for x in 0..first.width {
            if first.get(x, y) {
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1));
            }
        }
    }
    // 2 x 1 inches at 204 x 196 dpi, 1 inch from the page's left and top edges.
    let (w, h) = (x1 - x0, y1 - y0);
    assert!(
        w.abs_diff(2 * 204) <= 3 && h.abs_diff(196) <= 3,
        "a 2 x 1 inch box, not {w} x {h}"
    );
    assert!(
        y0.abs_diff(196) <= 3,
        "one inch from the top, not {y0} lines"
    );
    assert_eq!(
        first.black_pixels(),
        u64::from(w) * u64::from(h),
        "the box is solid and alone"
    );
    let second = doc.render_page(1, &spec).expect("page 2");
    assert!(second.black_pixels() > 500, "the text is drawn");
}
