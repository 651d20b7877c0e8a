//! PDF pages through a ghostscript subprocess (`gs -sDEVICE=pbmraw`): a fallback for
//! PDFs `hayro` cannot open, and the benchmark peer.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::Limits;
use crate::error::{Error, Format};
use crate::geometry::{PageSpec, fit};
use crate::halftone::Grey;
use crate::page::Page;

/// A file in the temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(ext: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        TempFile(
            std::env::temp_dir().join(format!("faxhub-render-{}-{n}.{ext}", std::process::id())),
        )
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        // Best effort: a leftover temp file is harmless.
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A PDF handed to ghostscript.
pub(crate) struct GsDoc {
    file: TempFile,
    program: String,
    timeout: Duration,
    pages: usize,
}

impl GsDoc {
    pub fn open(
        bytes: &[u8],
        program: &str,
        timeout: Duration,
        limits: &Limits,
    ) -> Result<Self, Error> {
        let file = TempFile::new("pdf");
        std::fs::write(&file.0, bytes)?;
        let mut doc = GsDoc {
            file,
            program: program.to_owned(),
            timeout,
            pages: 0,
        };
        let path = ps_string(&doc.file.0);
        let (out, err) = doc.run(&[
            "-q".into(),
            "-dNODISPLAY".into(),
            "-dSAFER".into(),
            format!("--permit-file-read={}", doc.file.0.display()),
            "-c".into(),
            format!("{path} (r) file runpdfbegin pdfpagecount = quit"),
        ])?;
        // Ghostscript reports unreadable files as 0 pages, with the reason in its messages.
        if String::from_utf8_lossy(&err).contains("requires a password") {
            return Err(Error::Encrypted("a password is needed to open it"));
        }
        let out = String::from_utf8_lossy(&out);
        let pages = out
            .lines()
            .rev()
            .find_map(|l| l.trim().parse::<usize>().ok())
            .ok_or_else(|| Error::Ghostscript("could not count the pages".into()))?;
        if pages == 0 && out.contains("Couldn't initialise file") {
            return Err(Error::corrupt(Format::Pdf, "ghostscript cannot read it"));
        }
        limits.check_pages(Format::Pdf, pages)?;
        doc.pages = pages;
        Ok(doc)
    }

    pub fn page_count(&self) -> usize {
        self.pages
    }

    pub fn render(&self, index: usize, spec: &PageSpec) -> Result<Page, Error> {
        if index >= self.pages {
            return Err(Error::PageOutOfRange {
                index,
                count: self.pages,
            });
        }
        let out = TempFile::new("pbm");
        let n = index + 1;
        self.run(&[
            "-q".into(),
            "-dSAFER".into(),
            "-dBATCH".into(),
            "-dNOPAUSE".into(),
            "-sDEVICE=pbmraw".into(),
            format!("-r{}x{}", spec.x_dpi(), spec.y_dpi()),
            format!("-dFirstPage={n}"),
            format!("-dLastPage={n}"),
            format!("-sOutputFile={}", out.0.display()),
            self.file.0.display().to_string(),
        ])?;
        let pbm = std::fs::read(&out.0)?;
        let (w, h, bits) =
            parse_pbm(&pbm).ok_or_else(|| Error::Ghostscript("unreadable PBM output".into()))?;
        Ok(place(w, h, bits, spec))
    }

    fn run(&self, args: &[String]) -> Result<(Vec<u8>, Vec<u8>), Error> {
        run(&self.program, self.timeout, args)
    }
}

/// Runs ghostscript with a deadline, returning its standard output and error.
fn run(program: &str, timeout: Duration, args: &[String]) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let stdout = TempFile::new("out");
    let stderr = TempFile::new("err");
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout.0)?)
        .stderr(std::fs::File::create(&stderr.0)?)
        .spawn()
        .map_err(|e| Error::GhostscriptMissing {
            program: program.to_owned(),
            reason: e.to_string(),
        })?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            // Kill errors mean it already exited; either way it is gone.
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Ghostscript(format!("timed out after {timeout:?}")));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if !status.success() {
        let err = std::fs::read(&stderr.0).unwrap_or_default();
        let first = String::from_utf8_lossy(&err)
            .lines()
            .find(|l| !l.trim().is_empty())
            .map(|l| format!(": {}", l.trim()))
            .unwrap_or_default();
        return Err(Error::Ghostscript(format!("exited with {status}{first}")));
    }
    Ok((std::fs::read(&stdout.0)?, std::fs::read(&stderr.0)?))
}

/// Whether a document is PostScript (`%!PS`, or a DOS EPS binary header), which only ghostscript reads.
pub fn is_postscript(bytes: &[u8]) -> bool {
    let text = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    text.starts_with(b"%!PS") || bytes.starts_with(b"\xc5\xd0\xd3\xc6")
}

/// Converts a PostScript document to PDF with ghostscript (`pdfwrite`, `-dSAFER`: the program reads only
/// its input and writes only its output), within `timeout` and an output of at most
/// `limits.max_input_bytes`; the PDF is what fax servers then render, so they need no ghostscript.
pub fn postscript_to_pdf(
    bytes: &[u8],
    program: &str,
    timeout: Duration,
    limits: &Limits,
) -> Result<Vec<u8>, Error> {
    let input = TempFile::new("ps");
    std::fs::write(&input.0, bytes)?;
    let output = TempFile::new("pdf");
    run(
        program,
        timeout,
        &[
            "-q".into(),
            "-dSAFER".into(),
            "-dBATCH".into(),
            "-dNOPAUSE".into(),
            "-sDEVICE=pdfwrite".into(),
            format!("-sOutputFile={}", output.0.display()),
            input.0.display().to_string(),
        ],
    )?;
    let size = std::fs::metadata(&output.0)?.len();
    if size > limits.max_input_bytes as u64 {
        return Err(Error::InputTooLarge {
            size: usize::try_from(size).unwrap_or(usize::MAX),
            limit: limits.max_input_bytes,
        });
    }
    let pdf = std::fs::read(&output.0)?;
    if !pdf.starts_with(b"%PDF-") {
        return Err(Error::Ghostscript(
            "the PostScript produced no PDF (no page was printed)".into(),
        ));
    }
    Ok(pdf)
}

/// A PostScript string literal for a path.
fn ps_string(p: &Path) -> String {
    let mut s = String::from("(");
    for c in p.display().to_string().chars() {
        if matches!(c, '(' | ')' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push(')');
    s
}

/// Parses a binary PBM (P4): returns width, height and the packed rows (1 = black).
pub(crate) fn parse_pbm(data: &[u8]) -> Option<(u32, u32, &[u8])> {
    let rest = data.strip_prefix(b"P4")?;
    let mut i = 0;
    let mut nums = [0u32; 2];
    for n in &mut nums {
        loop {
            match rest.get(i)? {
                b'#' => {
                    while *rest.get(i)? != b'\n' {
                        i += 1;
                    }
                }
                c if c.is_ascii_whitespace() => i += 1,
                _ => break,
            }
        }
        let start = i;
        while rest.get(i)?.is_ascii_digit() {
            i += 1;
        }
        *n = std::str::from_utf8(rest.get(start..i)?)
            .ok()?
            .parse()
            .ok()?;
    }
    let [w, h] = nums;
    let body = rest.get(i + 1..)?;
    let len = (w as usize).div_ceil(8).checked_mul(h as usize)?;
    Some((w, h, body.get(..len)?))
}

/// Puts ghostscript's page on the fax page the way the hayro backend does: true size,
/// centred, shrunk to fit when larger than the paper.
fn place(w: u32, h: u32, bits: &[u8], spec: &PageSpec) -> Page {
    let src = Page {
        width: w,
        height: h,
        x_dpi: spec.x_dpi(),
        y_dpi: spec.y_dpi(),
        data: bits.to_vec(),
    };
    let mut page = Page::blank(spec.width(), spec.height(), spec.x_dpi(), spec.y_dpi());
    let Some(p) = fit(
        spec,
        f64::from(w) / f64::from(spec.x_dpi()),
        f64::from(h) / f64::from(spec.y_dpi()),
        1.0,
    ) else {
        return page;
    };
    if (p.width, p.height) == (w, h) {
        for y in 0..h {
            for x in 0..w {
                if src.get(x, y) {
                    page.set(p.x + x, y, true);
                }
            }
        }
        return page;
    }
    let grey = Grey {
        width: w,
        height: h,
        data: (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .map(|(x, y)| if src.get(x, y) { 0 } else { 255 })
            .collect(),
    };
    let mut canvas = Grey::white(spec.width(), spec.height());
    canvas.paste(&grey.resize(p.width, p.height), p.x, 0);
    canvas.to_page(
        crate::geometry::Halftone::Threshold,
        spec.x_dpi(),
        spec.y_dpi(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbm_header_with_comment_parses() {
        let data = b"P4\n# made by hand\n10 2\n\xff\xc0\x00\x40";
        let (w, h, bits) = parse_pbm(data).expect("valid");
        assert_eq!((w, h, bits), (10, 2, &b"\xff\xc0\x00\x40"[..]));
        assert!(parse_pbm(b"P4\n10 2\n\xff").is_none());
        assert!(parse_pbm(b"P4 99999999999 1\n").is_none());
    }
}
