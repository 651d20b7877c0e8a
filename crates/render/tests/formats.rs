//! Each input format renders to the expected geometry and content.

mod common;

use std::io::Cursor;

use render::{Error, Format, Halftone, LoadOptions, Page, PageSpec, PaperSize, Resolution, load};

fn opts() -> LoadOptions {
    LoadOptions::default()
}

fn encode(img: &image::DynamicImage, fmt: image::ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    // The GIF encoder takes RGBA only.
    let img = &image::DynamicImage::ImageRgba8(img.to_rgba8());
    img.write_to(&mut out, fmt).expect("encode test image");
    out.into_inner()
}

/// A 400 × 200 picture: black left half, white right half.
fn half_black() -> image::DynamicImage {
    image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(400, 200, |x, _| {
        image::Luma([if x < 200 { 0 } else { 255 }])
    }))
}

/// The bounding box (x0, y0, x1, y1) of black pixels, exclusive ends.
fn ink_box(p: &Page) -> Option<(u32, u32, u32, u32)> {
    let mut b: Option<(u32, u32, u32, u32)> = None;
    for y in 0..p.height {
        for x in 0..p.width {
            if p.get(x, y) {
                let (x0, y0, x1, y1) = b.unwrap_or((x, y, x + 1, y + 1));
                b = Some((x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1)));
            }
        }
    }
    b
}

/// Asserts two pages are identical, reporting how many pixels differ.
fn same(a: &Page, b: &Page) {
    assert_eq!(
        (a.width, a.height, a.x_dpi, a.y_dpi),
        (b.width, b.height, b.x_dpi, b.y_dpi)
    );
    let diff: u32 = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x ^ y).count_ones())
        .sum();
    assert_eq!(diff, 0, "pages differ in {diff} pixels");
}

fn check_geometry(page: &Page, spec: &PageSpec) {
    assert_eq!((page.width, page.height), (spec.width(), spec.height()));
    assert_eq!((page.x_dpi, page.y_dpi), (spec.x_dpi(), spec.y_dpi()));
    assert_eq!(
        page.data.len(),
        page.width.div_ceil(8) as usize * page.height as usize
    );
}

#[test]
fn raster_formats_fill_the_paper_width_keeping_aspect() {
    for fmt in [
        image::ImageFormat::Png,
        image::ImageFormat::Jpeg,
        image::ImageFormat::Gif,
    ] {
        let bytes = encode(&half_black(), fmt);
        let doc = load(&bytes, &opts()).expect("loads");
        assert_eq!(doc.page_count(), 1);
        for res in Resolution::ALL {
            let spec = PageSpec::new(res, PaperSize::A4);
            let page = doc.render_page(0, &spec).expect("renders");
            check_geometry(&page, &spec);
            // A 2:1 picture spans the A4 paper width (content box) and half as tall in
            // physical units, whatever the pixel aspect.
            let (cw, _) = spec.content_box();
            let (x0, y0, x1, y1) = ink_box(&page).expect("has ink");
            assert_eq!(y0, 0, "{fmt:?} {res:?}");
            let black_w = x1 - x0;
            assert!(
                (i64::from(black_w) - i64::from(cw / 2)).abs() <= 2,
                "{fmt:?} {res:?} {black_w}"
            );
            let want_h = f64::from(cw) / f64::from(spec.x_dpi()) / 2.0 * f64::from(spec.y_dpi());
            assert!(
                (f64::from(y1) - want_h).abs() <= 2.0,
                "{fmt:?} {res:?} {y1} vs {want_h}"
            );
        }
    }
}

#[test]
fn formats_are_sniffed() {
    assert_eq!(
        render::sniff(&encode(&half_black(), image::ImageFormat::Png)),
        Some(Format::Png)
    );
    assert_eq!(
        render::sniff(&encode(&half_black(), image::ImageFormat::Jpeg)),
        Some(Format::Jpeg)
    );
    assert_eq!(
        render::sniff(&encode(&half_black(), image::ImageFormat::Gif)),
        Some(Format::Gif)
    );
    assert_eq!(render::sniff(&common::data("g4.tif")), Some(Format::Tiff));
    assert_eq!(
        render::sniff(&common::data("sample.pdf")),
        Some(Format::Pdf)
    );
    assert_eq!(
        render::sniff("héllo\tworld\n".as_bytes()),
        Some(Format::Text)
    );
    assert_eq!(render::sniff(b"\x00\x01binary"), None);
}

fn tiff_gray8(pages: &[(u32, u32, Vec<u8>)], dpi: (u32, u32)) -> Vec<u8> {
    use tiff::encoder::{Rational, TiffEncoder, colortype::Gray8};
    let mut out = Cursor::new(Vec::new());
    let mut enc = TiffEncoder::new(&mut out).expect("encoder");
    for (w, h, data) in pages {
        let mut img = enc.new_image::<Gray8>(*w, *h).expect("image");
        img.resolution(
            tiff::tags::ResolutionUnit::Inch,
            Rational { n: dpi.0, d: 1 },
        );
        img.y_resolution(Rational { n: dpi.1, d: 1 });
        img.write_data(data).expect("write");
    }
    out.into_inner()
}

#[test]
fn fax_sized_tiff_maps_one_to_one_at_its_own_resolution() {
    // A standard-resolution page exactly one fax line wide, with a diagonal pattern.
    let (w, h) = (1728u32, 1000u32);
    let data: Vec<u8> = (0..h)
        .flat_map(|y| (0..w).map(move |x| if (x + y) % 7 == 0 { 0 } else { 255 }))
        .collect();
    let bytes = tiff_gray8(
        &[(w, h, data.clone()), (w, h, vec![255; (w * h) as usize])],
        (204, 98),
    );
    let doc = load(&bytes, &opts()).expect("loads");
    assert_eq!((doc.format(), doc.page_count()), (Format::Tiff, 2));
    // Letter's content box is the full 1728-pixel line, so the page is not resampled.
    let spec = PageSpec::new(Resolution::Standard, PaperSize::Letter);
    let page = doc.render_page(0, &spec).expect("renders");
    check_geometry(&page, &spec);
    let mismatches = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .filter(|&(x, y)| page.get(x, y) != (data[(y * w + x) as usize] == 0))
        .count();
    assert_eq!(mismatches, 0);
    assert_eq!(doc.render_page(1, &spec).expect("page 2").black_pixels(), 0);
    assert!(matches!(
        doc.render_page(2, &spec),
        Err(Error::PageOutOfRange { index: 2, count: 2 })
    ));
}

#[test]
fn g4_tiff_at_its_own_resolution_is_scaled_to_the_fax_grid() {
    // Ghostscript's G4 of an A4 page at 50 dpi: 413 x 585 pixels, two pages.
    let doc = load(&common::data("g4.tif"), &opts()).expect("G4 TIFF loads");
    assert_eq!((doc.format(), doc.page_count()), (Format::Tiff, 2));
    let spec = PageSpec::new(Resolution::Fine, PaperSize::A4);
    let page = doc.render_page(0, &spec).expect("page 1");
    assert_eq!((page.width, page.height), (spec.width(), spec.height()));
    // The ink keeps its place on the page: the A4 picture fills the A4 content box, centred on the line.
    let raw = t4::tiff::read(&common::data("g4.tif"), &Default::default()).expect("t4 reads it");
    let src = &raw[0];
    let (sx0, sy0, sx1, sy1) = (0..src.height)
        .flat_map(|y| (0..src.width).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            src.data[y as usize * t4::stride(src.width) + x as usize / 8] & (0x80 >> (x % 8)) != 0
        })
        .fold((u32::MAX, u32::MAX, 0, 0), |(a, b, c, d), (x, y)| {
            (a.min(x), b.min(y), c.max(x + 1), d.max(y + 1))
        });
    let (x0, y0, x1, y1) = ink_box(&page).expect("ink");
    let (cw, ch) = spec.content_box();
    let kx = f64::from(cw) / f64::from(src.width);
    let ky = f64::from(ch) / f64::from(src.height);
    let off = f64::from(spec.width() - cw) / 2.0;
    for (got, want) in [
        (x0, off + f64::from(sx0) * kx),
        (x1, off + f64::from(sx1) * kx),
        (y0, f64::from(sy0) * ky),
        (y1, f64::from(sy1) * ky),
    ] {
        assert!(
            (f64::from(got) - want).abs() <= 8.0,
            "ink edge {got}, expected about {want}"
        );
    }
}

/// A TIFF-F page on the 1728-pixel line with rules one line high and random text-like runs.
fn fax_page(height: u32) -> Vec<u8> {
    let s = t4::stride(1728);
    let mut data = vec![0u8; s * height as usize];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for y in 0..height as usize {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if y % 37 == 0 {
            data[y * s..(y + 1) * s].fill(0xff);
        } else if y % 3 == 0 {
            for (i, b) in data[y * s..(y + 1) * s].iter_mut().enumerate() {
                *b = (x.rotate_left(i as u32) & 0x81) as u8;
            }
        }
    }
    data
}

fn tiff_f(data: &[u8], height: u32, y_dpi: f64, coding: t4::Coding) -> Vec<u8> {
    let page = t4::tiff::WritePage {
        page: t4::PageRef {
            width: 1728,
            height,
            data,
        },
        x_dpi: 204.0,
        y_dpi,
        bad_fax_lines: None,
        consecutive_bad_fax_lines: None,
        clean_fax_data: None,
    };
    t4::tiff::write(
        &[page],
        &t4::tiff::WriteOptions {
            coding: Some(coding),
            software: None,
            date_time: None,
        },
    )
    .expect("write")
}

#[test]
fn fax_tiff_on_the_fax_grid_keeps_its_bits_and_converts_lines() {
    let s = t4::stride(1728);
    let fine = fax_page(2200);
    for coding in [t4::Coding::Mh, t4::Coding::Mr { k: 4 }, t4::Coding::Mmr] {
        let doc = load(&tiff_f(&fine, 2200, 196.0, coding), &opts()).expect("TIFF-F loads");
        // Fine to fine: the very bits, and the page's own length.
        let same = doc
            .render_page(0, &PageSpec::new(Resolution::Fine, PaperSize::A4))
            .expect("fine");
        assert_eq!((same.width, same.height, same.y_dpi), (1728, 2200, 196));
        assert!(same.data == fine, "{coding:?}: bits changed");
        // Fine to standard: each pair of lines merged, so one-line rules survive.
        let std = doc
            .render_page(0, &PageSpec::new(Resolution::Standard, PaperSize::A4))
            .expect("standard");
        assert_eq!((std.height, std.y_dpi), (1100, 98));
        for y in 0..1100 {
            let want: Vec<u8> = (0..s)
                .map(|i| fine[2 * y * s + i] | fine[(2 * y + 1) * s + i])
                .collect();
            assert_eq!(
                &std.data[y * s..(y + 1) * s],
                &want[..],
                "standard line {y}"
            );
        }
        // Fine to superfine: each line twice.
        let sup = doc
            .render_page(0, &PageSpec::new(Resolution::Superfine, PaperSize::A4))
            .expect("superfine");
        assert_eq!(sup.height, 4400);
        for y in 0..4400 {
            assert_eq!(
                &sup.data[y * s..(y + 1) * s],
                &fine[(y / 2) * s..(y / 2 + 1) * s],
                "superfine line {y}"
            );
        }
    }
    // A standard-resolution fax sent at fine: lines doubled.
    let standard = fax_page(1100);
    let doc = load(&tiff_f(&standard, 1100, 98.0, t4::Coding::Mh), &opts()).expect("loads");
    let up = doc
        .render_page(0, &PageSpec::new(Resolution::Fine, PaperSize::A4))
        .expect("fine");
    assert_eq!(up.height, 2200);
    assert!(
        (0..2200).all(|y| up.data[y * s..(y + 1) * s] == standard[(y / 2) * s..(y / 2 + 1) * s])
    );
}

#[test]
fn corrupt_and_oversized_fax_tiffs_get_typed_errors() {
    let mut bytes = tiff_f(&fax_page(400), 400, 196.0, t4::Coding::Mmr);
    // Strip offsets past the end of the file.
    let tight = LoadOptions {
        limits: render::Limits {
            max_image_pixels: 1728 * 100,
            ..render::Limits::default()
        },
        ..opts()
    };
    assert!(matches!(
        load(&bytes, &tight),
        Err(Error::ImageTooLarge {
            width: 1728,
            height: 400,
            ..
        })
    ));
    let len = bytes.len();
    bytes.truncate(len - 200);
    let err = load(&bytes, &opts())
        .and_then(|d| d.render_page(0, &PageSpec::new(Resolution::Fine, PaperSize::A4)));
    assert!(
        matches!(
            err,
            Err(Error::Corrupt {
                format: Format::Tiff,
                ..
            })
        ),
        "{err:?}"
    );
}

#[test]
fn photos_dither_and_line_art_thresholds() {
    let ramp = image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(256, 64, |x, _| {
        image::Luma([x as u8])
    }));
    let bytes = encode(&ramp, image::ImageFormat::Png);
    let doc = load(&bytes, &opts()).expect("loads");
    let spec = PageSpec::new(Resolution::Fine, PaperSize::A4);
    let auto = doc.render_page(0, &spec).expect("auto");
    let dither = doc
        .render_page(
            0,
            &PageSpec {
                halftone: Halftone::Dither,
                ..spec
            },
        )
        .expect("dither");
    let threshold = doc
        .render_page(
            0,
            &PageSpec {
                halftone: Halftone::Threshold,
                ..spec
            },
        )
        .expect("threshold");
    same(&auto, &dither);
    assert!(auto != threshold);
    // Dithering keeps the mean grey: the ramp averages 50% black over its area.
    let (x0, y0, x1, y1) = ink_box(&dither).expect("ink");
    let area = f64::from((x1 - x0) * (y1 - y0));
    let ratio = dither.black_pixels() as f64 / area;
    assert!((ratio - 0.5).abs() < 0.03, "{ratio}");
    // Line art: Auto equals Threshold.
    let bytes = encode(&half_black(), image::ImageFormat::Png);
    let doc = load(&bytes, &opts()).expect("loads");
    same(
        &doc.render_page(0, &spec).expect("auto"),
        &doc.render_page(
            0,
            &PageSpec {
                halftone: Halftone::Threshold,
                ..spec
            },
        )
        .expect("threshold"),
    );
}

#[test]
fn transparent_pixels_are_paper_white() {
    let img = image::DynamicImage::ImageRgba8(image::RgbaImage::from_fn(50, 50, |x, _| {
        image::Rgba(if x < 25 { [0, 0, 0, 0] } else { [0, 0, 0, 255] })
    }));
    let doc = load(&encode(&img, image::ImageFormat::Png), &opts()).expect("loads");
    let page = doc.render_page(0, &PageSpec::default()).expect("renders");
    let (x0, _, _, _) = ink_box(&page).expect("ink");
    let (cw, _) = PageSpec::default().content_box();
    let left = (PageSpec::default().width() - cw) / 2;
    assert!(
        (i64::from(x0 - left) - i64::from(cw / 2)).abs() <= 2,
        "{x0}"
    );
}

#[test]
fn pdf_pages_render_at_true_size_centred_on_the_line() {
    let doc = load(&common::data("sample.pdf"), &opts()).expect("loads");
    assert_eq!((doc.format(), doc.page_count()), (Format::Pdf, 2));
    for res in Resolution::ALL {
        let spec = PageSpec::new(res, PaperSize::A4);
        let page = doc.render_page(1, &spec).expect("renders");
        check_geometry(&page, &spec);
        // Page 2: the title starts at x = 72 pt (plus the glyph's side bearing), the grid spans x = 100..500 pt and its
        // bottom is at y = 200 pt from the bottom of the page.
        let (x0, y0, x1, y1) = ink_box(&page).expect("ink");
        let px = |pt: f64, dpi: u32| pt / 72.0 * f64::from(dpi);
        let left = f64::from(spec.width() - spec.content_box().0) / 2.0;
        assert!(
            (f64::from(x0) - (left + px(72.0, spec.x_dpi()))).abs() <= px(1.5, spec.x_dpi()),
            "{res:?} x0 {x0}"
        );
        assert!(
            (f64::from(x1) - (left + px(500.5, spec.x_dpi()))).abs() <= 2.0,
            "{res:?} x1 {x1}"
        );
        // Top of the title at 760 pt + ~14 pt cap height; bottom of the grid at 200 pt.
        // The 1 pt grid line reaches half its width below 200 pt.
        let want = px(842.0 - 199.5, spec.y_dpi());
        assert!(
            (f64::from(y1) - want).abs() <= 2.0,
            "{res:?} y1 {y1} vs {want}"
        );
        assert!(
            f64::from(y0) < px(842.0 - 760.0, spec.y_dpi()),
            "{res:?} y0 {y0}"
        );
    }
}

#[test]
fn letter_pdf_shrinks_to_the_1728_pixel_line() {
    let mut spec = PageSpec::new(Resolution::Fine, PaperSize::Letter);
    spec.halftone = Halftone::Auto;
    let doc = load(&common::data("sample.pdf"), &opts()).expect("loads");
    let page = doc.render_page(0, &spec).expect("renders");
    check_geometry(&page, &spec);
    assert_eq!(page.width, 1728);
}

#[test]
fn owner_password_only_pdf_opens() {
    let doc = load(&common::data("owner-only.pdf"), &opts()).expect("no user password needed");
    let a = doc.render_page(0, &PageSpec::default()).expect("renders");
    let plain = load(&common::data("sample.pdf"), &opts()).expect("loads");
    same(
        &a,
        &plain.render_page(0, &PageSpec::default()).expect("renders"),
    );
}

#[test]
fn render_all_matches_render_page() {
    let doc = load(&common::data("sample.pdf"), &opts()).expect("loads");
    let spec = PageSpec::new(Resolution::Standard, PaperSize::A4);
    let mut seen = 0;
    doc.render_all(&spec, |i, page| {
        same(
            &page.expect("renders"),
            &doc.render_page(i, &spec).expect("renders"),
        );
        seen += 1;
        true
    });
    assert_eq!(seen, 2);
}

#[test]
fn threaded_render_all_gives_the_same_pages_in_order() {
    let pdf = common::data("sample.pdf");
    let spec = PageSpec::new(Resolution::Standard, PaperSize::A4);
    let one = load(&pdf, &opts()).expect("loads");
    let two = load(
        &pdf,
        &LoadOptions {
            threads: 2,
            ..opts()
        },
    )
    .expect("loads");
    let mut seen = Vec::new();
    two.render_all(&spec, |i, page| {
        same(
            &page.expect("renders"),
            &one.render_page(i, &spec).expect("renders"),
        );
        seen.push(i);
        true
    });
    assert_eq!(seen, [0, 1]);
    // Stopping after the first page ends the workers without a hang.
    let mut calls = 0;
    two.render_all(&spec, |_, _| {
        calls += 1;
        false
    });
    assert_eq!(calls, 1);
}

#[test]
fn documents_and_pages_can_move_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<render::Document>();
    send_sync::<Page>();
    send_sync::<Error>();
    let doc = load(&common::data("sample.pdf"), &opts()).expect("loads");
    let page = std::thread::spawn(move || doc.render_page(0, &PageSpec::default()))
        .join()
        .expect("no panic")
        .expect("renders");
    assert!(page.black_pixels() > 0);
}
