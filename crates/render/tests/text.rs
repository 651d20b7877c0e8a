//! Plain text, header stamping, cover pages and previews.

mod common;

use render::{LoadOptions, Page, PageSpec, PaperSize, Resolution, cover, header, load, preview};

fn render_text(text: &str, spec: &PageSpec) -> Vec<Page> {
    let doc = load(text.as_bytes(), &LoadOptions::default()).expect("text loads");
    (0..doc.page_count())
        .map(|i| doc.render_page(i, spec).expect("renders"))
        .collect()
}

/// Rows that hold any black pixel, as (first, last) inclusive.
fn ink_rows(p: &Page, rows: std::ops::Range<u32>) -> Option<(u32, u32)> {
    let inked: Vec<u32> = rows
        .filter(|&y| p.row(y).is_some_and(|r| r.iter().any(|&b| b != 0)))
        .collect();
    Some((*inked.first()?, *inked.last()?))
}

fn ink_cols(p: &Page) -> Option<(u32, u32)> {
    let cols: Vec<u32> = (0..p.width)
        .filter(|&x| (0..p.height).any(|y| p.get(x, y)))
        .collect();
    Some((*cols.first()?, *cols.last()?))
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Compares against tests/data/golden/<name>; `FAXHUB_BLESS=1` rewrites it.
fn check_golden(name: &str, page: &Page) {
    let got = format!(
        "{:016x} {} {} {}\n",
        fnv1a(&page.data),
        page.width,
        page.height,
        page.black_pixels()
    );
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/golden")
        .join(name);
    if std::env::var_os("FAXHUB_BLESS").is_some() {
        std::fs::write(&path, &got).expect("write golden");
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        got, want,
        "{name} changed (FAXHUB_BLESS=1 rewrites it after a visual check)"
    );
}

#[test]
fn full_blocks_fill_whole_cells_at_every_resolution() {
    // U+2588 fills its cell: ten of them span ten advances (10 pt × 0.602 em each) and
    // one line of type, whatever the pixel aspect (± the pixels the outline touches at
    // each end).
    for res in Resolution::ALL {
        let spec = PageSpec::new(res, PaperSize::A4);
        let pages = render_text("██████████", &spec);
        let p = &pages[0];
        let (x0, x1) = ink_cols(p).expect("ink");
        let want_w = 10.0 * 0.602 * 10.0 * f64::from(spec.x_dpi()) / 72.0;
        assert!(
            (f64::from(x1 - x0 + 1) - want_w).abs() <= 3.0,
            "{res:?}: {} vs {want_w}",
            x1 - x0 + 1
        );
        let (y0, y1) = ink_rows(p, 0..p.height).expect("ink");
        let h_pt = f64::from(y1 - y0 + 1) * 72.0 / f64::from(spec.y_dpi());
        // DejaVu's full block runs from the descender to the ascender: about 1.2 em.
        assert!(
            (11.0..13.5).contains(&h_pt),
            "{res:?}: block {h_pt} pt tall"
        );
        // 15 mm margins.
        let left_mm = f64::from(x0 - (spec.width() - spec.content_box().0) / 2)
            / f64::from(spec.x_dpi())
            * 25.4;
        assert!(
            (left_mm - 15.0).abs() < 0.5,
            "{res:?}: left margin {left_mm} mm"
        );
        // Solid but for a column of partly covered pixels where a cell edge falls
        // between pixels (advances are fractional).
        let area = u64::from(x1 - x0 + 1) * u64::from(y1 - y0 + 1);
        assert!(
            p.black_pixels() * 100 >= area * 98,
            "{res:?}: {} of {area}",
            p.black_pixels()
        );
    }
}

#[test]
fn text_page_matches_golden() {
    let text =
        "faxhub text rendering\n\tTabbed line\nÄÖÜ äöü ß € — «quotes»\n0123456789 !@#$%^&*()\n";
    let pages = render_text(text, &PageSpec::new(Resolution::Fine, PaperSize::A4));
    assert_eq!(pages.len(), 1);
    check_golden("text-fine-a4.txt", &pages[0]);
    let pages = render_text(
        text,
        &PageSpec::new(Resolution::Standard, PaperSize::Letter),
    );
    check_golden("text-standard-letter.txt", &pages[0]);
}

#[test]
fn text_paginates_and_lines_fall_in_their_bands() {
    let text: String = (1..=130).map(|i| format!("line {i}\n")).collect();
    let spec = PageSpec::new(Resolution::Fine, PaperSize::A4);
    let pages = render_text(&text, &spec);
    assert_eq!(pages.len(), 3, "63 lines a page");
    // Page 3 has lines 127..=130: four 12 pt lines below the 15 mm top margin.
    let line = 12.0 * 196.0 / 72.0;
    let top = 15.0 / 25.4 * 196.0;
    let (y0, y1) = ink_rows(&pages[2], 0..pages[2].height).expect("ink");
    assert!(f64::from(y0) >= top && f64::from(y0) < top + line, "{y0}");
    assert!(f64::from(y1) < top + 4.0 * line, "{y1}");
}

#[test]
fn header_stamps_only_the_top_band() {
    let spec = PageSpec::new(Resolution::Fine, PaperSize::A4);
    let mut page = Page::blank(spec.width(), spec.height(), spec.x_dpi(), spec.y_dpi());
    // A page black all over: the band is cleared before printing.
    page.data.fill(0xff);
    let info = header::HeaderLine::classic("ACME Corp +1 555 0100", "2026-11-24 19:00");
    header::stamp(&mut page, &info.expand(1, 2));
    let band = header::band_height(spec.y_dpi());
    assert!((30..50).contains(&band), "8 pt × 1.5 at 196 lpi: {band}");
    let white_in_band = u64::from(band) * u64::from(page.width) - ink_in(&page, 0..band);
    assert!(white_in_band > u64::from(band) * u64::from(page.width) * 8 / 10);
    assert_eq!(
        ink_in(&page, band..page.height),
        u64::from(page.height - band) * u64::from(page.width)
    );

    let mut blank = Page::blank(spec.width(), spec.height(), spec.x_dpi(), spec.y_dpi());
    header::stamp(&mut blank, &info.expand(1, 2));
    let (x0, x1) = ink_cols(&blank).expect("ink");
    assert!(
        x0 < 60 && x1 > spec.width() - 60,
        "spans the line: {x0}..{x1}"
    );
    let mut other = Page::blank(spec.width(), spec.height(), spec.x_dpi(), spec.y_dpi());
    header::stamp(&mut other, &info.expand(2, 2));
    assert!(blank != other, "page number is printed");
}

fn ink_in(p: &Page, rows: std::ops::Range<u32>) -> u64 {
    rows.filter_map(|y| p.row(y))
        .flatten()
        .map(|b| u64::from(b.count_ones()))
        .sum()
}

#[test]
fn cover_page_lays_out_fields_and_note() {
    let spec = PageSpec::new(Resolution::Fine, PaperSize::A4);
    let info = cover::CoverInfo {
        from: "Alice Example".into(),
        from_fax: "+1 555 0100".into(),
        to: "Bob Example".into(),
        to_fax: "+44 20 7946 0000".into(),
        subject: "Quarterly figures".into(),
        note: "Please find the figures attached.\nCall me if anything is unclear.".into(),
        date: "2026-11-24".into(),
        pages: 4,
    };
    let page = cover::render(&info, &spec);
    assert_eq!((page.width, page.height), (spec.width(), spec.height()));
    check_golden("cover-fine-a4.txt", &page);
    let long = cover::render(
        &cover::CoverInfo {
            note: "word ".repeat(20_000),
            ..info.clone()
        },
        &spec,
    );
    // The note is cut at the bottom margin.
    let bottom = spec.height() - (20.0 / 25.4 * 196.0) as u32;
    assert_eq!(ink_in(&long, bottom..long.height), 0);
    assert!(long.black_pixels() > page.black_pixels() * 3);
    let empty = cover::render(&cover::CoverInfo::default(), &spec);
    assert!(empty.black_pixels() < page.black_pixels());
}

#[test]
fn previews_keep_the_physical_aspect() {
    let fine = PageSpec::new(Resolution::Fine, PaperSize::A4);
    let std = PageSpec::new(Resolution::Standard, PaperSize::A4);
    for spec in [fine, std] {
        let mut page = Page::blank(spec.width(), spec.height(), spec.x_dpi(), spec.y_dpi());
        // Left half black.
        for y in 0..page.height {
            for x in 0..page.width / 2 {
                page.set(x, y, true);
            }
        }
        let png = preview::png(&page, 200, 200).expect("encodes");
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let mut reader = decoder.read_info().expect("valid PNG");
        let mut buf = vec![0; reader.output_buffer_size().expect("size")];
        let info = reader.next_frame(&mut buf).expect("frame");
        // 1728/204 in × 2292/196 in (or 1146/98 in) scaled to 200 rows.
        assert_eq!(
            (info.width, info.height),
            (145, 200),
            "{:?}",
            spec.resolution
        );
        let row = &buf[..info.width as usize];
        assert_eq!(row[0], 0);
        assert_eq!(row[info.width as usize - 1], 255);
        let mean = buf.iter().map(|&v| f64::from(v)).sum::<f64>() / buf.len() as f64;
        assert!((mean - 127.5).abs() < 3.0, "{mean}");
    }
}
