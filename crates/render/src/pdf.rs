//! PDF pages through the pure-Rust `hayro` rasterizer.

use std::panic::{AssertUnwindSafe, catch_unwind};

use hayro::hayro_interpret::InterpreterSettings;
use hayro::hayro_interpret::util::TransformExt;
use hayro::hayro_syntax::object::Object;
use hayro::hayro_syntax::{DecryptionError, LoadPdfError, Pdf};
use hayro::kurbo::Affine;
use hayro::vello_cpu::color::palette::css::TRANSPARENT;
use hayro::vello_cpu::{Pixmap, RasterizerSettings, RenderContext, Resources, TargetInit};
use hayro::{RenderCache, RenderSettings};

use crate::error::{Error, Format};
use crate::geometry::{Halftone, PageSpec, fit};
use crate::halftone::Grey;
use crate::page::Page;
use crate::{Limits, SharedBytes};

/// A parsed PDF.
pub(crate) struct PdfDoc {
    pdf: Pdf,
    pages: usize,
}

impl PdfDoc {
    pub fn open(bytes: SharedBytes, limits: &Limits) -> Result<Self, Error> {
        let pdf = catch_unwind(AssertUnwindSafe(|| Pdf::new(std::sync::Arc::new(bytes))))
            .map_err(|_| Error::corrupt(Format::Pdf, "the PDF parser failed"))?
            .map_err(|e| match e {
                LoadPdfError::Decryption(d) => Error::Encrypted(match d {
                    DecryptionError::PasswordProtected => "a password is needed to open it",
                    DecryptionError::UnsupportedAlgorithm => "with an unsupported algorithm",
                    DecryptionError::MissingIDEntry | DecryptionError::InvalidEncryption => {
                        "its encryption dictionary is broken"
                    }
                }),
                LoadPdfError::Invalid => Error::corrupt(Format::Pdf, "no readable page tree"),
            })?;
        let pages = pdf.pages().len();
        limits.check_pages(Format::Pdf, pages)?;
        check_images(&pdf, limits)?;
        Ok(PdfDoc { pdf, pages })
    }

    pub fn page_count(&self) -> usize {
        self.pages
    }

    /// Renders page `index` with a fresh cache.
    pub fn render(&self, index: usize, spec: &PageSpec) -> Result<Page, Error> {
        let pages = self.pdf.pages();
        let page = pages.get(index).ok_or(Error::PageOutOfRange {
            index,
            count: self.pages,
        })?;
        let cache = RenderCache::new();
        render_one(page, &cache, &mut Canvas::default(), index, spec)
    }

    /// Renders every page in order, sharing font and glyph caches between pages. With
    /// `threads` > 1, worker `k` renders pages `k, k + threads, …` with its own caches and
    /// `each` still sees pages in order; at most two pages per worker wait in memory.
    pub fn render_all(
        &self,
        spec: &PageSpec,
        threads: usize,
        mut each: impl FnMut(usize, Result<Page, Error>) -> bool,
    ) {
        let n = threads.clamp(1, self.pages);
        if n == 1 {
            let pages = self.pdf.pages();
            let cache = RenderCache::new();
            let mut canvas = Canvas::default();
            for (i, page) in pages.iter().enumerate() {
                if !each(i, render_one(page, &cache, &mut canvas, i, spec)) {
                    break;
                }
            }
            return;
        }
        std::thread::scope(|scope| {
            let mut lanes = Vec::with_capacity(n);
            for k in 0..n {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Page, Error>>(1);
                let pdf = &self.pdf;
                let spawned = std::thread::Builder::new().spawn_scoped(scope, move || {
                    let pages = pdf.pages();
                    let cache = RenderCache::new();
                    let mut canvas = Canvas::default();
                    for (i, page) in pages.iter().enumerate().skip(k).step_by(n) {
                        // A closed channel means the caller stopped early.
                        if tx
                            .send(render_one(page, &cache, &mut canvas, i, spec))
                            .is_err()
                        {
                            break;
                        }
                    }
                });
                if spawned.is_err() {
                    break;
                }
                lanes.push(rx);
            }
            if lanes.len() < n {
                // Could not start every worker: let the started ones stop and render in
                // this thread instead.
                drop(lanes);
                self.render_all(spec, 1, each);
                return;
            }
            for i in 0..self.pages {
                let page = lanes
                    .get(i % n)
                    .and_then(|rx| rx.recv().ok())
                    .unwrap_or(Err(Error::RendererFailed {
                        format: Format::Pdf,
                        page: i,
                    }));
                if !each(i, page) {
                    break;
                }
            }
            drop(lanes);
        });
    }
}

/// Rejects documents with an image whose declared size is over the pixel limit, before
/// the rasterizer would allocate it.
fn check_images(pdf: &Pdf, limits: &Limits) -> Result<(), Error> {
    for obj in pdf.objects() {
        if let Object::Stream(s) = obj {
            let d = s.dict();
            let is_image = d
                .get::<hayro::hayro_syntax::object::Name>(b"Subtype")
                .is_some_and(|n| n.as_ref() == b"Image");
            if !is_image {
                continue;
            }
            let w = d.get::<f64>(b"Width").unwrap_or(0.0).max(0.0) as u64;
            let h = d.get::<f64>(b"Height").unwrap_or(0.0).max(0.0) as u64;
            if w.saturating_mul(h) > limits.max_image_pixels {
                return Err(Error::ImageTooLarge {
                    width: w,
                    height: h,
                    limit: limits.max_image_pixels,
                });
            }
        }
    }
    Ok(())
}

/// The rasterizer's scene and RGBA target, kept from page to page: allocating and
/// faulting in 16 MB per fine A4 page is a measurable share of the time.
#[derive(Default)]
struct Canvas {
    ctx: Option<RenderContext>,
    pixmap: Option<Pixmap>,
}

fn render_one<'a>(
    page: &'a hayro::hayro_syntax::page::Page<'a>,
    cache: &RenderCache<'a>,
    canvas: &mut Canvas,
    index: usize,
    spec: &PageSpec,
) -> Result<Page, Error> {
    let (w_pt, h_pt) = page.render_dimensions();
    // PDF pages are printed at true size, shrunk only when larger than the paper.
    let place = fit(spec, f64::from(w_pt) / 72.0, f64::from(h_pt) / 72.0, 1.0)
        .ok_or_else(|| Error::corrupt(Format::Pdf, format!("page {index} has no usable size")))?;
    let (width, height) = (spec.width(), spec.height());
    let (w16, h16) = match (u16::try_from(width), u16::try_from(height)) {
        (Ok(w), Ok(h)) => (w, h),
        _ => {
            return Err(Error::unsupported(
                Format::Pdf,
                "page larger than the rasterizer allows",
            ));
        }
    };
    let sx = place.scale * f64::from(spec.x_dpi()) / 72.0;
    let sy = place.scale * f64::from(spec.y_dpi()) / 72.0;
    let transform = Affine::translate((f64::from(place.x), 0.0))
        * Affine::scale_non_uniform(sx, sy)
        * page.initial_transform(true).to_kurbo();
    let dither = spec.halftone == Halftone::Dither;
    let settings = RenderSettings {
        // Anti-aliased coverage thresholded at 50% below, rather than hayro's aliased mode:
        // hayro caches rasterized glyphs only when anti-aliasing, which makes text-heavy
        // pages about twice as fast. Dithering also wants images interpolated.
        aliasing_threshold: None,
        force_image_interpolation: dither,
        ..RenderSettings::default()
    };
    let mut ctx = match canvas.ctx.take() {
        Some(mut ctx) if (ctx.width(), ctx.height()) == (w16, h16) => {
            ctx.reset();
            ctx
        }
        _ => RenderContext::new_with(
            w16,
            h16,
            hayro::vello_cpu::RenderSettings {
                num_threads: 0,
                ..Default::default()
            },
        ),
    };
    let mut pixmap = match canvas.pixmap.take() {
        Some(p) if (p.width(), p.height()) == (w16, h16) => p,
        _ => Pixmap::new(w16, h16),
    };
    // On a panic the context and pixmap are dropped, not reused.
    catch_unwind(AssertUnwindSafe(|| {
        hayro::render_into(
            page,
            cache,
            &InterpreterSettings::default(),
            &settings,
            &mut ctx,
            transform,
        );
        ctx.flush();
        ctx.render_with(
            &mut pixmap,
            &mut Resources::default(),
            RasterizerSettings {
                // Transparent is paper white to `to_page`, and lets the rasterizer skip
                // painting a background into every tile.
                target_init: TargetInit::Clear(TRANSPARENT),
                ..Default::default()
            },
        );
    }))
    .map_err(|_| Error::RendererFailed {
        format: Format::Pdf,
        page: index,
    })?;
    let result = to_page(&pixmap, spec);
    canvas.ctx = Some(ctx);
    canvas.pixmap = Some(pixmap);
    Ok(result)
}

/// Whether eight RGBA pixels are all zero (transparent): four word loads, not thirty-two byte tests.
#[inline]
fn is_clear(px: &[u8; 32]) -> bool {
    px.as_chunks::<8>()
        .0
        .iter()
        .fold(0u64, |acc, w| acc | u64::from_ne_bytes(*w))
        == 0
}

/// A premultiplied RGBA pixel over white paper → its luma (0 black to 255 white; up to 510 for a pixel
/// whose colour exceeds its alpha, which callers clamp or compare).
#[inline]
fn over_white([r, g, b, a]: [u8; 4]) -> u32 {
    let white = 255 - u32::from(a);
    let l = (u32::from(r) * 77 + u32::from(g) * 150 + u32::from(b) * 29) >> 8;
    l + white
}

/// Eight premultiplied RGBA pixels over white paper → one byte of bilevel pixels (1 = darker than half).
#[inline]
fn dark_bits(px: &[u8; 32]) -> u8 {
    let mut b = 0u8;
    for (i, p) in px.as_chunks::<4>().0.iter().enumerate() {
        b |= u8::from(over_white(*p) < 128) << (7 - i);
    }
    b
}

/// Premultiplied RGBA over white → luma → bilevel.
fn to_page(pixmap: &Pixmap, spec: &PageSpec) -> Page {
    let (w, h) = (u32::from(pixmap.width()), u32::from(pixmap.height()));
    let luma = |p: &hayro::vello_cpu::peniko::color::PremulRgba8| {
        over_white([p.r, p.g, p.b, p.a]).min(255) as u8
    };
    if spec.halftone == Halftone::Dither {
        let grey = Grey {
            width: w,
            height: h,
            data: pixmap.data().iter().map(luma).collect(),
        };
        return grey.to_page(Halftone::Dither, spec.x_dpi(), spec.y_dpi());
    }
    // Threshold straight into packed bits: this runs over every pixel of every page, so
    // it skips the intermediate grey buffer.
    let mut page = Page::blank(w, h, spec.x_dpi(), spec.y_dpi());
    let stride = page.stride();
    if w == 0 {
        return page;
    }
    for (src, dst) in pixmap
        .data_as_u8_slice()
        .chunks_exact(w as usize * 4)
        .zip(page.data.chunks_exact_mut(stride))
    {
        let (eights, rest) = src.as_chunks::<32>();
        for (px, byte) in eights.iter().zip(dst.iter_mut()) {
            // Most of a page is untouched paper (transparent, all zero): eight pixels at a time.
            if !is_clear(px) {
                *byte = dark_bits(px);
            }
        }
        if !rest.is_empty() {
            let mut last = [0u8; 32];
            last[..rest.len()].copy_from_slice(rest);
            if let Some(byte) = dst.get_mut(eights.len()) {
                *byte = dark_bits(&last);
            }
        }
    }
    page
}
