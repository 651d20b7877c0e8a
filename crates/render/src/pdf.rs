//! PDF pages through the pure-Rust `hayro` rasterizer.

use std::panic::{AssertUnwindSafe, catch_unwind};

use hayro::hayro_interpret::util::{RectExt, TransformExt};
use hayro::hayro_interpret::{
    ClipPath, Context, Device as _, FillRule, InterpreterCache, InterpreterSettings, interpret_page,
};
use hayro::hayro_syntax::object::Object;
use hayro::hayro_syntax::{DecryptionError, LoadPdfError, Pdf};
use hayro::kurbo::{Affine, Rect, Shape as _};
use hayro::vello_cpu::color::palette::css::TRANSPARENT;
use hayro::vello_cpu::{Pixmap, RasterizerSettings, RenderContext, Resources, TargetInit};
use hayro::{RenderCache, RenderSettings};

use crate::error::{Error, Format};
use crate::geometry::{Halftone, PageSpec, fit};
use crate::halftone::Grey;
use crate::ink::{Drawn, Ink, InkCache};
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
        render_one(page, &Caches::new(), &mut Canvas::default(), index, spec)
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
            let cache = Caches::new();
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
                    let cache = Caches::new();
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

/// What one rendering thread keeps from page to page: fonts and decoded objects for the
/// bilevel device and for the full-colour renderer (pages the bilevel device refuses).
struct Caches<'a> {
    interpreter: InterpreterCache<'a>,
    colour: RenderCache<'a>,
}

impl Caches<'_> {
    fn new() -> Self {
        Caches {
            interpreter: InterpreterCache::new(),
            colour: RenderCache::new(),
        }
    }
}

/// The bilevel device's glyph cache, and the full-colour rasterizer's scene and RGBA target,
/// kept from page to page: allocating and faulting in 16 MB per fine A4 page is a measurable
/// share of the time.
#[derive(Default)]
struct Canvas {
    ink: InkCache,
    ctx: Option<RenderContext>,
    pixmap: Option<Pixmap>,
}

/// Places a PDF page on the fax page: user space to device pixels.
fn page_transform(
    page: &hayro::hayro_syntax::page::Page<'_>,
    spec: &PageSpec,
    index: usize,
) -> Result<Affine, Error> {
    let (w_pt, h_pt) = page.render_dimensions();
    // PDF pages are printed at true size, shrunk only when larger than the paper.
    let place = fit(spec, f64::from(w_pt) / 72.0, f64::from(h_pt) / 72.0, 1.0)
        .ok_or_else(|| Error::corrupt(Format::Pdf, format!("page {index} has no usable size")))?;
    let sx = place.scale * f64::from(spec.x_dpi()) / 72.0;
    let sy = place.scale * f64::from(spec.y_dpi()) / 72.0;
    Ok(Affine::translate((f64::from(place.x), 0.0))
        * Affine::scale_non_uniform(sx, sy)
        * page.initial_transform(true).to_kurbo())
}

/// Draws a page with the bilevel device, which refuses pages it cannot draw faithfully.
fn draw_bilevel<'a>(
    page: &'a hayro::hayro_syntax::page::Page<'a>,
    interpreter: &InterpreterCache<'a>,
    cache: &mut InkCache,
    transform: Affine,
    spec: &PageSpec,
) -> Drawn {
    let (width, height) = (spec.width(), spec.height());
    let target = Rect::new(0.0, 0.0, f64::from(width), f64::from(height));
    let mut context = Context::new(
        transform,
        target,
        interpreter,
        page.xref(),
        InterpreterSettings::default(),
    );
    let mut ink = Ink::new(
        Page::blank(width, height, spec.x_dpi(), spec.y_dpi()),
        cache,
    );
    // Nothing outside the crop box shows; the clip is needed only when the box does not
    // cover the whole page.
    let crop = page.intersected_crop_box().to_kurbo();
    let [a, b, c, d, _, _] = transform.as_coeffs();
    let axis_aligned = (b == 0.0 && c == 0.0) || (a == 0.0 && d == 0.0);
    let mapped = transform
        .transform_rect_bbox(crop)
        .inflate(1.0 / 256.0, 1.0 / 256.0);
    if !axis_aligned || !mapped.contains_rect(target) {
        ink.push_clip_path(&ClipPath {
            path: transform * crop.to_path(0.1),
            fill: FillRule::NonZero,
        });
    }
    interpret_page(page, &mut context, &mut ink);
    ink.finish()
}

fn render_one<'a>(
    page: &'a hayro::hayro_syntax::page::Page<'a>,
    caches: &Caches<'a>,
    canvas: &mut Canvas,
    index: usize,
    spec: &PageSpec,
) -> Result<Page, Error> {
    // Thresholded pages are drawn straight into bits; dithered ones need grey levels.
    let bilevel = spec.halftone != Halftone::Dither;
    render_via(page, caches, canvas, index, spec, bilevel)
}

/// Renders a page with the bilevel device first when `bilevel` (falling back to full colour
/// for a page it refuses), else in full colour.
fn render_via<'a>(
    page: &'a hayro::hayro_syntax::page::Page<'a>,
    caches: &Caches<'a>,
    canvas: &mut Canvas,
    index: usize,
    spec: &PageSpec,
    bilevel: bool,
) -> Result<Page, Error> {
    let (w16, h16) = match (u16::try_from(spec.width()), u16::try_from(spec.height())) {
        (Ok(w), Ok(h)) => (w, h),
        _ => {
            return Err(Error::unsupported(
                Format::Pdf,
                "page larger than the rasterizer allows",
            ));
        }
    };
    let transform = page_transform(page, spec, index)?;
    let dither = spec.halftone == Halftone::Dither;
    if bilevel {
        let drawn = catch_unwind(AssertUnwindSafe(|| {
            draw_bilevel(page, &caches.interpreter, &mut canvas.ink, transform, spec)
        }));
        match drawn {
            Ok(Drawn::Page(p)) => return Ok(p),
            Ok(Drawn::Refused(why)) => {
                tracing::debug!(page = index, why, "PDF page drawn in full colour");
            }
            Err(_) => {
                canvas.ink = InkCache::default();
                return Err(Error::RendererFailed {
                    format: Format::Pdf,
                    page: index,
                });
            }
        }
    }
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
            &caches.colour,
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
pub(crate) fn over_white([r, g, b, a]: [u8; 4]) -> u32 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{PaperSize, Resolution};

    /// A one-page A4 PDF drawing `content` with `resources` (a dictionary's entries).
    fn one_page(content: &str, resources: &str) -> Vec<u8> {
        let objects = [
            "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << {resources} >> /Contents 4 0 R >>"
            ),
            format!(
                "<< /Length {} >>\nstream\n{content}\nendstream",
                content.len()
            ),
        ];
        let mut out = b"%PDF-1.7\n".to_vec();
        let mut offsets = Vec::new();
        for (i, o) in objects.iter().enumerate() {
            offsets.push(out.len());
            out.extend(format!("{} 0 obj\n{o}\nendobj\n", i + 1).bytes());
        }
        let xref = out.len();
        out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).bytes());
        for o in offsets {
            out.extend(format!("{o:010} 00000 n \n").bytes());
        }
        out.extend(
            format!(
                "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
                objects.len() + 1
            )
            .bytes(),
        );
        out
    }

    /// Page 0 of `pdf` through the bilevel device alone, and in full colour.
    fn both_ways(pdf: Vec<u8>, spec: &PageSpec) -> (Drawn, Page) {
        let doc = PdfDoc::open(SharedBytes::from(pdf), &Limits::default()).expect("opens");
        let pages = doc.pdf.pages();
        let page = pages.first().expect("a page");
        let caches = Caches::new();
        let colour =
            render_via(page, &caches, &mut Canvas::default(), 0, spec, false).expect("renders");
        let transform = page_transform(page, spec, 0).expect("placed");
        let drawn = draw_bilevel(
            page,
            &caches.interpreter,
            &mut InkCache::default(),
            transform,
            spec,
        );
        (drawn, colour)
    }

    /// Share of pixels equal, and black pixels both have over black pixels either has.
    fn agreement(a: &Page, b: &Page) -> (f64, f64) {
        let (mut differ, mut both, mut either) = (0u64, 0u64, 0u64);
        for (x, y) in a.data.iter().zip(&b.data) {
            differ += u64::from((x ^ y).count_ones());
            both += u64::from((x & y).count_ones());
            either += u64::from((x | y).count_ones());
        }
        let total = u64::from(a.width) * u64::from(a.height);
        (
            1.0 - differ as f64 / total as f64,
            both as f64 / either.max(1) as f64,
        )
    }

    const FONT: &str = "/Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >>";

    #[test]
    fn text_and_line_art_come_out_as_the_full_colour_renderer_draws_them() {
        let content = "0 0 0 rg 50 700 200 100 re f 1 1 1 rg 100 720 50 50 re f \
             0 g 300 700 m 400 800 l 500 700 l 300 770 l 500 770 l h f* \
             q 100 400 m 100 500 200 550 250 450 c h W n 50 350 300 300 re f Q \
             [6 3] 0 d 2 w 50 300 m 500 300 l S [] 0 d \
             0.1 w 50 250 m 500 260 l S 1 j 8 w 60 150 m 200 200 l 300 120 l S \
             q 100 0 0 100 350 400 cm BI /IM true /W 8 /H 8 /BPC 1 /F /AHx ID \
             FF81BDA5A5BD81FF> EI Q \
             q 80 0 0 80 450 560 cm BI /W 4 /H 4 /CS /G /BPC 8 /F /AHx ID \
             00FF00FF FF00FF00 00FF00FF 408040C0> EI Q \
             BT /F1 24 Tf 50 60 Td (Hello, fax: Wxyz 0123) Tj ET \
             BT /F1 7 Tf 50 40 Td 2 Tr 0.3 w (small stroked text) Tj ET";
        for res in [
            Resolution::Standard,
            Resolution::Fine,
            Resolution::Superfine,
        ] {
            let spec = PageSpec::new(res, PaperSize::A4);
            let (drawn, colour) = both_ways(one_page(content, FONT), &spec);
            let Drawn::Page(ink) = drawn else {
                panic!("{res:?}: the bilevel device refused a plain page");
            };
            let (equal, iou) = agreement(&ink, &colour);
            eprintln!(
                "{res:?}: black {} vs {}, equal {equal:.5}, IoU {iou:.4}",
                ink.black_pixels(),
                colour.black_pixels()
            );
            // Edges of shapes and glyphs may land a pixel apart (pixel centres versus 50%
            // anti-aliased coverage); everything else is the same.
            assert!(equal > 0.997, "{res:?}: {equal} of pixels equal");
            assert!(iou > 0.93, "{res:?}: IoU {iou}");
            assert!(ink.black_pixels() > 50_000);
        }
    }

    #[test]
    fn the_sample_document_draws_bilevel_close_to_full_colour() {
        let pdf = include_bytes!("../tests/data/sample.pdf").to_vec();
        let spec = PageSpec::new(Resolution::Fine, PaperSize::A4);
        let (drawn, colour) = both_ways(pdf, &spec);
        let Drawn::Page(ink) = drawn else {
            panic!("refused");
        };
        let (equal, iou) = agreement(&ink, &colour);
        assert!(equal > 0.995 && iou > 0.9, "equal {equal}, IoU {iou}");
    }

    #[test]
    fn translucent_and_shaded_pages_are_drawn_in_full_colour() {
        let spec = PageSpec::new(Resolution::Fine, PaperSize::A4);
        let cases = [
            (
                "/GS1 gs 0 g 50 50 300 300 re f",
                "/ExtGState << /GS1 << /ca 0.5 >> >>",
                "translucent paint",
            ),
            (
                "/Sh1 sh",
                "/Shading << /Sh1 << /ShadingType 2 /ColorSpace /DeviceGray /Coords [0 0 595 0] \
                 /Function << /FunctionType 2 /Domain [0 1] /C0 [0] /C1 [1] /N 1 >> >> >>",
                "a pattern or shading",
            ),
            (
                "/GS1 gs 0 g 50 50 300 300 re f",
                "/ExtGState << /GS1 << /BM /Multiply >> >>",
                "a blend mode",
            ),
        ];
        for (content, resources, why) in cases {
            let pdf = one_page(content, resources);
            let (drawn, colour) = both_ways(pdf.clone(), &spec);
            assert!(
                matches!(drawn, Drawn::Refused(w) if w == why),
                "{content}: expected a refusal for {why}"
            );
            // The page still renders, exactly as the full-colour renderer draws it.
            let doc = PdfDoc::open(SharedBytes::from(pdf), &Limits::default()).expect("opens");
            assert_eq!(doc.render(0, &spec).expect("renders"), colour);
            assert!(colour.black_pixels() > 0, "{content}");
        }
    }

    #[test]
    fn deeply_nested_clip_paths_stay_bounded() {
        // Each clip is a page-sized triangle, so each would need a page-sized mask.
        let clip = "q 0 0 m 595 0 l 595 842 l 0 842 l 300 400 l h W n ";
        let content = format!("{}0 g 0 0 595 842 re f", clip.repeat(1000));
        let spec = PageSpec::new(Resolution::Fine, PaperSize::A4);
        let (drawn, colour) = both_ways(one_page(&content, ""), &spec);
        assert!(
            matches!(drawn, Drawn::Refused("clip paths nested too deep")),
            "1000 page-sized clip masks (500 MB) were kept"
        );
        assert!(colour.black_pixels() > 1_000_000);
        // A few nested clips are drawn bilevel.
        let content = format!("{}0 g 0 0 595 842 re f", clip.repeat(20));
        let (drawn, colour) = both_ways(one_page(&content, ""), &spec);
        let Drawn::Page(ink) = drawn else {
            panic!("20 nested clips refused");
        };
        let (equal, _) = agreement(&ink, &colour);
        assert!(equal > 0.999, "{equal}");
    }

    #[test]
    fn hairline_rules_drawn_as_thin_rectangles_stay_visible() {
        // Word processors draw table rules as filled rectangles a fraction of a point tall.
        let spec = PageSpec::new(Resolution::Standard, PaperSize::A4);
        let (drawn, _) = both_ways(
            one_page("0 g 50 400 400 0.2 re f 300 100 0.1 200 re f", ""),
            &spec,
        );
        let Drawn::Page(ink) = drawn else {
            panic!("refused");
        };
        // 400 pt at 204 dpi is 1133 pixels in one row; 200 pt at 98 dpi is 272 rows of one pixel.
        let expected = 1133 + 272;
        let black = ink.black_pixels();
        assert!(
            black.abs_diff(expected) <= 3,
            "{black} black pixels, expected about {expected}"
        );
    }
}
