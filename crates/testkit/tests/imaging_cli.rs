//! `faxhub convert` and `faxhub preview` as a person runs them, checked with libtiff's own tools: the file
//! passes `tiffinfo -D` and libtiff decodes to the pages we meant (cover first, header line stamped, text
//! and fax TIFF pages in order, the fax TIFF's bits untouched).

use std::path::Path;
use std::process::Command;
use testkit::harness::faxhub_bin;

fn faxhub(args: &[&str]) -> (bool, String) {
    let out = Command::new(faxhub_bin().expect("faxhub binary"))
        .args(args)
        .env("FAXHUB_LOG", "warn")
        .output()
        .expect("run faxhub");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn libtiff() -> bool {
    testkit::gate::needs(
        "tiffcp",
        Command::new("tiffcp").arg("-h").output().is_ok(),
        "apt-get install libtiff-tools",
    )
}

/// libtiff's decoding of a file, read back as plain bitmaps.
fn libtiff_pages(file: &Path) -> Vec<t4::tiff::TiffPage> {
    let plain = file.with_extension("plain.tif");
    let out = Command::new("tiffcp")
        .args(["-c", "none"])
        .arg(file)
        .arg(&plain)
        .output()
        .expect("tiffcp");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = Command::new("tiffinfo")
        .arg("-D")
        .arg(file)
        .output()
        .expect("tiffinfo");
    let stderr = String::from_utf8_lossy(&info.stderr);
    assert!(stderr.trim().is_empty(), "tiffinfo -D: {stderr}");
    t4::tiff::read(
        &std::fs::read(&plain).expect("tiffcp wrote it"),
        &Default::default(),
    )
    .expect("plain TIFF")
}

fn ink_rows(p: &t4::tiff::TiffPage, rows: std::ops::Range<u32>) -> u64 {
    let s = t4::stride(p.width);
    rows.map(|y| {
        p.data[y as usize * s..(y as usize + 1) * s]
            .iter()
            .map(|b| u64::from(b.count_ones()))
            .sum::<u64>()
    })
    .sum()
}

#[test]
fn convert_writes_tiff_f_that_libtiff_decodes_to_our_pages() {
    if !libtiff() {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let d = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    std::fs::write(
        d("letter.txt"),
        "Dear customer,\n\tyour order 4711 ships today.\n\nRegards\n",
    )
    .expect("writes the letter");
    // A fax TIFF already at 204 x 196 on the 1728-pixel line: its bits must come through unchanged.
    let (s, h) = (t4::stride(1728), 400u32);
    let mut bits = vec![0u8; s * h as usize];
    for y in (0..h as usize).step_by(7) {
        bits[y * s..y * s + 100].fill(0xf0);
    }
    let fax = t4::tiff::write(
        &[t4::tiff::WritePage {
            page: t4::PageRef {
                width: 1728,
                height: h,
                data: &bits,
            },
            x_dpi: 204.0,
            y_dpi: 196.0,
            bad_fax_lines: None,
            consecutive_bad_fax_lines: None,
            clean_fax_data: None,
        }],
        &t4::tiff::WriteOptions {
            coding: Some(t4::Coding::Mh),
            software: None,
            date_time: None,
        },
    )
    .expect("a fax TIFF writes");
    std::fs::write(d("received.tif"), fax).expect("writes the fax");

    for (compression, threads) in [("mmr", "3"), ("mr", "1"), ("mh", "2")] {
        let out = d(&format!("out-{compression}.tif"));
        let (ok, text) = faxhub(&[
            "convert",
            &d("letter.txt"),
            &d("received.tif"),
            "-o",
            &out,
            "--compression",
            compression,
            "--threads",
            threads,
            "--cover-to",
            "Accounts",
            "--cover-subject",
            "Order 4711",
            "--cover-note",
            "Two pages follow.",
        ]);
        assert!(ok, "{text}");
        assert!(text.contains("3 page(s)"), "{text}");
        let pages = libtiff_pages(Path::new(&out));
        assert_eq!(pages.len(), 3);
        for (i, p) in pages.iter().enumerate() {
            assert_eq!(
                (p.width, p.x_dpi(), p.y_dpi()),
                (1728, Some(204.0), Some(196.0))
            );
            assert_eq!(p.page_number, Some((i as u16, 3)));
        }
        assert!(
            ink_rows(&pages[0], 0..pages[0].height) > 5000,
            "the cover has its title and fields"
        );
        assert!(
            ink_rows(&pages[1], 0..pages[1].height) > 500,
            "the letter's text"
        );
        assert_eq!(pages[2].height, h, "a fax page keeps its length");
        assert!(
            pages[2].data == bits,
            "the fax TIFF's bits came through unchanged"
        );
    }

    // With a header line: a band of ink at the top of every page, and the fax page's first lines replaced.
    let out = d("header.tif");
    let (ok, text) = faxhub(&[
        "convert",
        &d("received.tif"),
        "-o",
        &out,
        "--header",
        "ACME +1 555 0100",
    ]);
    assert!(ok, "{text}");
    let page = &libtiff_pages(Path::new(&out))[0];
    let band = render::header::band_height(196);
    assert!(ink_rows(page, 0..band) > 200, "the header is printed");
    let s = t4::stride(1728);
    assert!(
        page.data[band as usize * s..] == bits[band as usize * s..],
        "below the header the page is as sent"
    );
}

#[test]
fn convert_and_preview_refuse_bad_input_by_name_and_leave_no_file() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let d = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    std::fs::write(d("blob.bin"), [0u8, 1, 2, 3, 0xff, 0xfe, 0, 0]).expect("writes the blob");
    std::fs::write(d("ok.txt"), "hello").expect("writes the text");
    let (ok, text) = faxhub(&["convert", &d("missing.pdf"), "-o", &d("out.tif")]);
    assert!(!ok && text.contains("missing.pdf"), "{text}");
    let (ok, text) = faxhub(&["convert", &d("ok.txt"), &d("blob.bin"), "-o", &d("out.tif")]);
    assert!(
        !ok && text.contains("blob.bin") && text.contains("cannot be faxed"),
        "{text}"
    );
    assert!(!Path::new(&d("out.tif")).exists(), "nothing written");
    let (ok, text) = faxhub(&["preview", &d("ok.txt"), "-o", &d("p.png"), "--page", "2"]);
    assert!(
        !ok && text.contains("--page 2") && text.contains("1 page"),
        "{text}"
    );
    let (ok, text) = faxhub(&[
        "convert",
        &d("ok.txt"),
        "-o",
        &d("out.tif"),
        "--compression",
        "jbig",
    ]);
    assert!(!ok && text.contains("jbig"), "{text}");

    // PostScript goes through ghostscript, as uploads do: its two pages, never its source as text.
    if testkit::gate::needs(
        "ghostscript (gs)",
        Command::new("gs").arg("--version").output().is_ok(),
        "apt-get install ghostscript",
    ) {
        std::fs::write(
            d("memo.ps"),
            "%!PS-Adobe-3.0\n72 698 144 72 rectfill showpage\n72 600 144 72 rectfill showpage\n",
        )
        .expect("writes the PostScript");
        let (ok, text) = faxhub(&["convert", &d("memo.ps"), "-o", &d("ps.tif")]);
        assert!(ok, "{text}");
        let pages = t4::tiff::read(
            &std::fs::read(d("ps.tif")).expect("the TIFF"),
            &t4::tiff::ReadLimits::default(),
        )
        .expect("a TIFF");
        assert_eq!(pages.len(), 2, "{text}");
    }

    // A thumbnail of a real page: a PNG no larger than 200 x 283 with some ink on it.
    let (ok, text) = faxhub(&["preview", &d("ok.txt"), "-o", &d("p.png"), "--thumbnail"]);
    assert!(ok, "{text}");
    let png = std::fs::read(d("p.png")).expect("preview wrote the PNG");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let (w, h) = (
        u32::from_be_bytes(png[16..20].try_into().expect("four bytes")),
        u32::from_be_bytes(png[20..24].try_into().expect("four bytes")),
    );
    assert!(w <= 200 && h <= 283 && w > 100 && h > 150, "{w} x {h}");
}
