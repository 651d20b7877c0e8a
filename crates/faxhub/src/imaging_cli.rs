//! `faxhub convert` and `faxhub preview`: documents to fax pages on this machine, without a supervisor.
//!
//! `convert` renders PDF, PNG, JPEG, GIF, TIFF (any, including G3/G4 fax TIFFs) and plain text to one
//! TIFF Class F file, with an optional cover page and header line, as the fax server would send it.
//! `preview` renders one page to the fax grid and writes it as a PNG (full size, bounded or a thumbnail).

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ResolutionArg {
    /// 204 x 98 dpi
    Standard,
    /// 204 x 196 dpi
    Fine,
    /// 204 x 391 dpi
    Superfine,
    /// 300 x 300 dpi
    R300,
    /// 408 x 391 dpi
    R16,
}

impl From<ResolutionArg> for render::Resolution {
    fn from(r: ResolutionArg) -> Self {
        match r {
            ResolutionArg::Standard => render::Resolution::Standard,
            ResolutionArg::Fine => render::Resolution::Fine,
            ResolutionArg::Superfine => render::Resolution::Superfine,
            ResolutionArg::R300 => render::Resolution::R300,
            ResolutionArg::R16 => render::Resolution::R16,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PaperArg {
    A4,
    Letter,
    B4,
    A3,
}

impl From<PaperArg> for render::PaperSize {
    fn from(p: PaperArg) -> Self {
        match p {
            PaperArg::A4 => render::PaperSize::A4,
            PaperArg::Letter => render::PaperSize::Letter,
            PaperArg::B4 => render::PaperSize::B4,
            PaperArg::A3 => render::PaperSize::A3,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    /// T.4 one-dimensional (TIFF compression 3)
    Mh,
    /// T.4 two-dimensional, K by resolution (TIFF compression 3)
    Mr,
    /// T.6 (TIFF compression 4)
    Mmr,
    /// Uncompressed (TIFF compression 1)
    None,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum HalftoneArg {
    /// Threshold text and line art, dither photographs
    Auto,
    Threshold,
    Dither,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PdfArg {
    /// The built-in renderer
    Builtin,
    /// Ghostscript (`gs` on the PATH)
    Ghostscript,
}

/// How pages are rendered; shared by `convert` and `preview`.
#[derive(Debug, Clone, Args)]
pub struct RenderArgs {
    /// Vertical resolution: standard (98 lpi), fine (196) or superfine (391).
    #[arg(long, value_enum, default_value = "fine")]
    pub(crate) resolution: ResolutionArg,
    /// Paper size the pages are laid out for.
    #[arg(long, value_enum, default_value = "a4")]
    paper: PaperArg,
    /// How grey and colour become black and white: auto (pictures dithered, text and lines thresholded), or one method for everything.
    #[arg(long, value_enum, default_value = "auto")]
    halftone: HalftoneArg,
    /// PDF renderer.
    #[arg(long, value_enum, default_value = "builtin")]
    pdf: PdfArg,
    /// Threads for rendering PDF pages (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Documents, sent in this order.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// The TIFF Class F file to write.
    #[arg(short, long)]
    output: PathBuf,
    /// Coding of the pages in the TIFF file: mh, mr, mmr or none (uncompressed).
    #[arg(long, value_enum, default_value = "mmr")]
    compression: CompressionArg,
    #[command(flatten)]
    render: RenderArgs,
    /// Stamp the header line `From <TEXT> <date> Page n/N` on every page.
    #[arg(long, value_name = "TEXT")]
    header: Option<String>,
    /// Put a cover page first, addressed to this name.
    #[arg(long, value_name = "NAME")]
    cover_to: Option<String>,
    /// The recipient's fax number on the cover page.
    #[arg(long, value_name = "NUMBER", requires = "cover_to")]
    cover_to_fax: Option<String>,
    /// The sender's name on the cover page.
    #[arg(long, value_name = "NAME", requires = "cover_to")]
    cover_from: Option<String>,
    /// The sender's fax number on the cover page.
    #[arg(long, value_name = "NUMBER", requires = "cover_to")]
    cover_from_fax: Option<String>,
    /// The subject on the cover page.
    #[arg(long, requires = "cover_to")]
    cover_subject: Option<String>,
    /// The cover note; `@FILE` reads it from a file.
    #[arg(long, requires = "cover_to")]
    cover_note: Option<String>,
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// The document to preview.
    input: PathBuf,
    /// The PNG to write.
    #[arg(short, long)]
    output: PathBuf,
    /// Page number, from 1.
    #[arg(long, default_value_t = 1)]
    page: usize,
    /// Largest width of the picture in pixels (default: the page's own size).
    #[arg(long)]
    max_width: Option<u32>,
    /// Largest height of the picture in pixels.
    #[arg(long)]
    max_height: Option<u32>,
    /// A thumbnail: at most 200 x 283 pixels.
    #[arg(long, conflicts_with_all = ["max_width", "max_height"])]
    thumbnail: bool,
    #[command(flatten)]
    render: RenderArgs,
}

pub(crate) fn load_options(r: &RenderArgs) -> render::LoadOptions {
    let threads = if r.threads == 0 {
        std::thread::available_parallelism().map_or(1, usize::from)
    } else {
        r.threads
    };
    render::LoadOptions {
        pdf_backend: match r.pdf {
            PdfArg::Builtin => render::PdfBackend::Hayro,
            PdfArg::Ghostscript => render::PdfBackend::ghostscript(),
        },
        text_paper: r.paper.into(),
        threads,
        ..render::LoadOptions::default()
    }
}

pub(crate) fn spec(r: &RenderArgs) -> render::PageSpec {
    render::PageSpec {
        halftone: match r.halftone {
            HalftoneArg::Auto => render::Halftone::Auto,
            HalftoneArg::Threshold => render::Halftone::Threshold,
            HalftoneArg::Dither => render::Halftone::Dither,
        },
        ..render::PageSpec::new(r.resolution.into(), r.paper.into())
    }
}

pub(crate) fn load(path: &Path, options: &render::LoadOptions) -> anyhow::Result<render::Document> {
    let mut bytes = map_input(path).with_context(|| format!("reading {}", path.display()))?;
    if render::is_postscript(&bytes) {
        // As the supervisor does with uploads: PostScript becomes the PDF ghostscript makes of it.
        let pdf = render::postscript_to_pdf(
            &bytes,
            "gs",
            std::time::Duration::from_secs(60),
            &options.limits,
        )
        .with_context(|| format!("{} (PostScript) cannot be converted", path.display()))?;
        bytes = render::SharedBytes::from(pdf);
    }
    render::load_shared(bytes, options)
        .with_context(|| format!("{} cannot be faxed", path.display()))
}

/// A regular file is mapped rather than copied into memory: a 25 MB uncompressed TIFF then costs a few
/// hundred page faults on pages the kernel already holds instead of ten thousand on fresh memory. Anything
/// else (a pipe, `/dev/stdin`, an empty file, a file system that cannot map) is read.
fn map_input(path: &Path) -> std::io::Result<render::SharedBytes> {
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if meta.is_file() && meta.len() > 0 {
        // SAFETY: the map is only read, and the command's contract is that its input files are not
        // changed while it runs. A file truncated or rewritten under the map breaks that contract (a
        // truncation ends the process with SIGBUS, as for other tools that map their input: tiffcp,
        // ripgrep); the supervisor never maps, it holds uploaded documents in memory.
        #[allow(unsafe_code)]
        let mapped = unsafe { memmap2::Mmap::map(&file) };
        if let Ok(map) = mapped {
            return Ok(render::SharedBytes::new(map));
        }
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut &file, &mut bytes)?;
    Ok(render::SharedBytes::from(bytes))
}

pub fn convert(a: ConvertArgs) -> anyhow::Result<()> {
    let options = load_options(&a.render);
    let docs = a
        .inputs
        .iter()
        .map(|p| load(p, &options))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // The command has no time zone setting: the header shows UTC and says so.
    let now = time::OffsetDateTime::now_utc();
    let date = now
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute] UTC"
        ))
        .context("formatting the date")?;
    let note = match a.cover_note.as_deref() {
        Some(n) if n.starts_with('@') => std::fs::read_to_string(&n[1..])
            .with_context(|| format!("reading the cover note {}", &n[1..]))?,
        Some(n) => n.to_owned(),
        None => String::new(),
    };
    let fax = render::FaxOptions {
        spec: spec(&a.render),
        coder_threads: options.threads,
        header: a
            .header
            .map(|from| render::HeaderLine::classic(&from, &date)),
        cover: a.cover_to.map(|to| render::cover::CoverInfo {
            to,
            to_fax: a.cover_to_fax.unwrap_or_default(),
            from: a.cover_from.unwrap_or_default(),
            from_fax: a.cover_from_fax.unwrap_or_default(),
            subject: a.cover_subject.unwrap_or_default(),
            note,
            date,
            pages: 0,
        }),
    };
    let coding = match a.compression {
        CompressionArg::Mh => Some(render::convert::Coding::Mh),
        CompressionArg::Mr => Some(render::convert::Coding::Mr {
            k: fax.spec.resolution.mr_k(),
        }),
        CompressionArg::Mmr => Some(render::convert::Coding::Mmr),
        CompressionArg::None => None,
    };
    let date_time = now
        .format(time::macros::format_description!(
            "[year]:[month]:[day] [hour]:[minute]:[second]"
        ))
        .context("formatting the date")?;
    let pages = render::convert::page_total(&docs, &fax);
    let software = Some(format!("faxhub {}", env!("CARGO_PKG_VERSION")));
    // Written page by page through a temporary file beside the target, renamed when complete.
    let tmp = a.output.with_extension("faxhub-tmp");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let written = render::convert::to_tiff(
        &docs,
        &fax,
        coding,
        software,
        Some(date_time),
        // Small: a page's strip larger than the buffer goes to the file without a copy.
        std::io::BufWriter::with_capacity(64 << 10, file),
    )
    .and_then(|w| {
        w.into_inner()
            .map_err(|e| render::Error::Io(e.into_error()))
    });
    let file = match written {
        Ok(f) => f,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e).with_context(|| format!("writing {}", a.output.display()));
        }
    };
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    drop(file);
    std::fs::rename(&tmp, &a.output).with_context(|| format!("writing {}", a.output.display()))?;
    eprintln!("{}: {pages} page(s), {size} bytes", a.output.display());
    Ok(())
}

pub fn preview(a: PreviewArgs) -> anyhow::Result<()> {
    let doc = load(&a.input, &load_options(&a.render))?;
    if a.page == 0 || a.page > doc.page_count() {
        bail!(
            "--page {} is out of range: {} has {} page(s)",
            a.page,
            a.input.display(),
            doc.page_count()
        );
    }
    let page = doc.render_page(a.page - 1, &spec(&a.render))?;
    let (w, h) = if a.thumbnail {
        (200, 283)
    } else {
        (
            a.max_width.unwrap_or(u32::MAX),
            a.max_height.unwrap_or(u32::MAX),
        )
    };
    let png = render::preview::png(&page, w, h)?;
    write_atomically(&a.output, &png)
}

/// Writes through a temporary file beside the target, so a failed run never leaves half a file.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("faxhub-tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}
