//! Conformance against the reference tools: ghostscript's fax devices and libtiff's `tiffcp` write G3, G3-2D and
//! G4 TIFFs that we must decode bit-exactly, and what we write must satisfy `tiffinfo -D` and decode in libtiff
//! to exactly the pages we encoded.
//!
//! The references are independent of our reader: ghostscript renders the same PostScript to PBM, and `tiffcp -c
//! none` turns every compressed file back into plain bitmaps. Without the tools the tests are skipped, unless
//! `FAXHUB_SLOW_TESTS=1` (the official suite), where a missing tool fails them.

use std::path::{Path, PathBuf};
use std::process::Command;

use t4::tiff::{self, ReadLimits, TiffPage, WriteOptions, WritePage};
use t4::{Coding, PageRef};

#[path = "../../testkit/src/gate.rs"]
mod gate;

/// The tools, or `None` when they are missing outside the official suite.
fn tools() -> Option<()> {
    let missing: Vec<&str> = ["gs", "tiffcp", "tiffinfo"]
        .into_iter()
        .filter(|t| Command::new(t).arg("--help").output().is_err())
        .collect();
    gate::needs(
        &format!("{missing:?}"),
        missing.is_empty(),
        "install ghostscript and libtiff-tools",
    )
    .then_some(())
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Three pages that exercise the codes: text of several sizes and rules; a halftoned gradient (a change every
/// few pixels) with circles; a black page with white text (runs longer than 2560 on wide lines) and a blank
/// band.
const DOCUMENT: &str = r#"%!PS
/Helvetica findfont 28 scalefont setfont
72 760 moveto (Conformance page one: MH, MR and MMR) show
/Times-Roman findfont 11 scalefont setfont
0 1 40 { /i exch def 72 720 i 15 mul sub moveto (The quick brown fox jumps over the lazy dog 0123456789 ;:!?) show } for
2 setlinewidth 60 80 moveto 540 80 lineto stroke
0.3 setlinewidth 60 70 moveto 540 75 lineto stroke
showpage
0 1 100 { /i exch def i 100 div setgray i 6 mul 0 6 842 rectfill } for
0 setgray 3 setlinewidth 300 420 150 0 360 arc stroke 1 setgray 300 420 80 0 360 arc fill
showpage
0 0 612 842 rectfill 1 setgray /Helvetica-Bold findfont 40 scalefont setfont
72 600 moveto (White on black) show 0 400 612 60 rectfill
showpage
"#;

struct Work {
    dir: PathBuf,
}

impl Work {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("t4-interop-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creates the work directory");
        std::fs::write(dir.join("doc.ps"), DOCUMENT).expect("writes the test document");
        Work { dir }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    /// Renders the document with a ghostscript device at a size in pixels.
    fn gs(&self, device: &str, size: (u32, u32), dpi: &str, out: &str) -> PathBuf {
        let path = self.path(out);
        run(Command::new("gs")
            .args(["-q", "-dNOPAUSE", "-dBATCH", "-dSAFER", "-dAdjustWidth=0"])
            .arg(format!("-sDEVICE={device}"))
            .arg(format!("-r{dpi}"))
            .arg(format!("-g{}x{}", size.0, size.1))
            .arg(format!("-sOutputFile={}", path.display()))
            .arg(self.path("doc.ps")));
        path
    }
    fn tiffcp(&self, args: &[&str], input: &Path, out: &str) -> PathBuf {
        let path = self.path(out);
        run(Command::new("tiffcp").args(args).arg(input).arg(&path));
        path
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn read(path: &Path) -> Vec<TiffPage> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    tiff::read(&bytes, &ReadLimits::default()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Reads the pages of a multi-image raw PBM (P4) file, as ghostscript's `pbmraw` writes them.
fn read_pbm(path: &Path) -> Vec<(u32, u32, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    t4::pbm::read(&bytes, u64::MAX)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .map(|p| (p.width, p.height, p.data))
        .collect()
}

/// Asserts two page lists are the same bitmaps, naming the first differing page and line.
fn assert_same(what: &str, got: &[TiffPage], want: &[(u32, u32, Vec<u8>)]) {
    assert_eq!(got.len(), want.len(), "{what}: page count");
    for (i, (g, (w, h, data))) in got.iter().zip(want).enumerate() {
        assert_eq!((g.width, g.height), (*w, *h), "{what}: page {} size", i + 1);
        assert_eq!(
            g.decode_bad_lines,
            0,
            "{what}: page {} had undecodable lines",
            i + 1
        );
        if g.data != *data {
            let s = t4::stride(*w);
            let line =
                (0..*h as usize).find(|&y| g.data[y * s..(y + 1) * s] != data[y * s..(y + 1) * s]);
            panic!("{what}: page {} differs first at line {line:?}", i + 1);
        }
    }
}

/// Sizes: an A4 fine page on the 1728-pixel line, a short B4 (2432) strip and a width no fax uses.
const SIZES: [((u32, u32), &str); 3] = [
    ((1728, 2292), "204x196"),
    ((2432, 700), "300x300"),
    ((1001, 613), "204x98"),
];

#[test]
fn ghostscript_fax_devices_decode_bit_exactly() {
    if tools().is_none() {
        return;
    }
    let w = Work::new("gs");
    for (n, (size, dpi)) in SIZES.iter().enumerate() {
        let pbm = read_pbm(&w.gs("pbmraw", *size, dpi, &format!("{n}.pbm")));
        assert_eq!(pbm.len(), 3);
        assert!(
            pbm.iter().all(|(_, _, d)| d.iter().any(|&b| b != 0)),
            "every page has black pixels"
        );
        for device in ["tiffg3", "tiffg32d", "tiffg4", "tiffcrle"] {
            let file = w.gs(device, *size, dpi, &format!("{n}-{device}.tif"));
            // libtiff's own decoding of ghostscript's file is the second reference.
            let plain = w.tiffcp(&["-c", "none"], &file, &format!("{n}-{device}-none.tif"));
            assert_same(
                &format!("{device} {size:?} by libtiff"),
                &read(&plain),
                &pbm,
            );
            assert_same(&format!("{device} {size:?}"), &read(&file), &pbm);
        }
    }
}

#[test]
fn libtiff_compressions_fill_orders_and_strips_decode_bit_exactly() {
    if tools().is_none() {
        return;
    }
    let w = Work::new("libtiff");
    for (n, (size, dpi)) in SIZES.iter().enumerate() {
        let pbm = read_pbm(&w.gs("pbmraw", *size, dpi, &format!("{n}.pbm")));
        let g4 = w.gs("tiffg4", *size, dpi, &format!("{n}.tif"));
        let plain = w.tiffcp(&["-c", "none"], &g4, &format!("{n}-none.tif"));
        let variants: [&[&str]; 11] = [
            &["-c", "g3"],
            &["-c", "g3:1d:fill"],
            &["-c", "g3:2d"],
            &["-c", "g3:2d:fill"],
            &["-c", "g4"],
            &["-c", "g4", "-f", "lsb2msb"],
            &["-c", "g3:2d", "-f", "lsb2msb", "-r", "64"],
            &["-c", "g4", "-r", "100"],
            &["-c", "packbits"],
            &["-c", "none", "-f", "lsb2msb", "-r", "7"],
            &["-c", "none", "-B"],
        ];
        for (v, args) in variants.iter().enumerate() {
            let file = w.tiffcp(args, &plain, &format!("{n}-v{v}.tif"));
            assert_same(&format!("tiffcp {args:?} {size:?}"), &read(&file), &pbm);
        }
    }
}

/// A page with structure no renderer makes: random runs, long runs, and lines equal to the one above.
fn synthetic(width: u32, height: u32, seed: u64) -> Vec<u8> {
    let s = t4::stride(width);
    let mut data = vec![0u8; s * height as usize];
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for y in 0..height as usize {
        let r = next();
        if r % 5 == 1 && y > 0 {
            data.copy_within((y - 1) * s..y * s, y * s);
            continue;
        }
        let row = &mut data[y * s..(y + 1) * s];
        match r % 5 {
            0 => {}
            2 => row.iter_mut().for_each(|b| *b = next() as u8),
            _ => {
                let mut px = 0;
                let mut black = false;
                while px < width {
                    let run = (next() % if r % 2 == 0 { 40 } else { 3000 }) as u32 + 1;
                    for p in px..(px + run).min(width) {
                        if black {
                            row[p as usize / 8] |= 0x80 >> (p % 8);
                        }
                    }
                    px += run;
                    black = !black;
                }
            }
        }
        // Padding bits past the width stay white.
        if !width.is_multiple_of(8) {
            row[s - 1] &= 0xffu8 << (8 - width % 8);
        }
    }
    data
}

#[test]
fn libtiff_reads_what_we_write_exactly_and_tiffinfo_has_no_warnings() {
    if tools().is_none() {
        return;
    }
    let w = Work::new("ours");
    let mut pages: Vec<(u32, u32, Vec<u8>)> =
        read_pbm(&w.gs("pbmraw", (1728, 2292), "204x196", "doc.pbm"));
    for (i, width) in [1728u32, 2048, 2432, 1001, 9].into_iter().enumerate() {
        pages.push((width, 300, synthetic(width, 300, i as u64 + 7)));
    }
    let ours: Vec<WritePage<'_>> = pages
        .iter()
        .map(|(width, height, data)| WritePage {
            page: PageRef {
                width: *width,
                height: *height,
                data,
            },
            x_dpi: 204.0,
            y_dpi: 196.0,
            bad_fax_lines: None,
            consecutive_bad_fax_lines: None,
            clean_fax_data: None,
        })
        .collect();
    for (name, coding) in [
        ("none", None),
        ("mh", Some(Coding::Mh)),
        ("mr2", Some(Coding::Mr { k: 2 })),
        ("mr4", Some(Coding::Mr { k: 4 })),
        ("mmr", Some(Coding::Mmr)),
    ] {
        let bytes = tiff::write(
            &ours,
            &WriteOptions {
                coding,
                software: Some("faxhub t4 interop".into()),
                date_time: Some("2026:11:25 10:00:00".into()),
            },
        )
        .expect("our TIFF writes");
        let file = w.path(&format!("{name}.tif"));
        std::fs::write(&file, &bytes).expect("writes the TIFF");

        let info = run(Command::new("tiffinfo").arg("-D").arg(&file));
        let stderr = String::from_utf8_lossy(&info.stderr);
        assert!(
            stderr.trim().is_empty(),
            "{name}: tiffinfo -D complained: {stderr}"
        );
        let stdout = String::from_utf8_lossy(&info.stdout);
        assert_eq!(
            stdout.matches("TIFF Directory").count(),
            pages.len(),
            "{name}: {stdout}"
        );
        let scheme = match coding {
            None => "Compression Scheme: None",
            Some(Coding::Mmr) => "CCITT Group 4",
            Some(_) => "CCITT Group 3",
        };
        assert_eq!(
            stdout.matches(scheme).count(),
            pages.len(),
            "{name}: {stdout}"
        );
        assert!(stdout.contains("Software: faxhub t4 interop"), "{stdout}");

        // libtiff's decoding of our file, read back as plain bitmaps.
        let plain = w.tiffcp(&["-c", "none"], &file, &format!("{name}-none.tif"));
        let back = read(&plain);
        assert!(back.iter().all(|p| p.compression == 1));
        assert_same(&format!("libtiff decoding our {name}"), &back, &pages);
        // And ours, for good measure.
        assert_same(&format!("our {name}"), &read(&file), &pages);
    }
}
