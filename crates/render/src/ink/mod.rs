//! A bilevel output device for hayro's PDF interpreter.
//!
//! Fax pages are black and white, so a page is drawn straight into its 1-bit rows: paths are
//! scan-converted to spans of whole pixels (pixel centres, see [`scan`]), painted black or
//! white as their colour is darker or lighter than mid-grey, through a stack of clips kept as
//! pixel rectangles and, for non-rectangular clips, bit masks. Glyphs are rasterized once per
//! size and quarter-pixel position and then copied as spans. This replaces a full-colour
//! pipeline (a 16 MB RGBA canvas per fine A4 page, anti-aliased and then thresholded) for the
//! pages fax documents are made of: text, line art and pictures.
//!
//! What a bilevel page cannot show faithfully (translucent paint, soft masks, blend modes,
//! patterns and shadings) is not approximated: the device notes it, stops drawing, and the
//! caller renders that page with the full-colour pipeline instead (see `pdf.rs`).

pub(crate) mod scan;

use std::rc::Rc;

use rustc_hash::FxHashMap;

use hayro::hayro_interpret::font::{Glyph, GlyphIdentifier, GlyphRun, HintingCache, OutlineGlyph};
use hayro::hayro_interpret::util::x_y_advances;
use hayro::hayro_interpret::{
    BlendMode, ClipPath, Device, DrawMode, DrawProps, FillRule, Image, ImageDrawProps, LumaData,
    Paint, SoftMask, StrokeProps,
};
use hayro::hayro_interpret::{ImageData, hayro_cmap::WritingMode};
use hayro::kurbo::{self, Affine, BezPath, Rect};

use crate::page::Page;
use scan::{Rule, Scan, Span, Window};

/// Glyphs up to this many device pixels high and wide are rasterized once and cached.
const MAX_CACHED_GLYPH: f64 = 256.0;
/// Bytes of cached glyphs per rendering thread before the cache starts over.
const MAX_CACHED_GLYPH_BYTES: usize = 32 << 20;
/// Horizontal glyph positions are kept to a quarter pixel.
const SUBPIXEL: f64 = 4.0;
/// Clip masks one page may hold at once (nested clips each keep one); a page that nests more
/// is drawn by the full-colour renderer.
const MAX_MASK_BYTES: usize = 64 << 20;
/// Hinting applies between these sizes (pixels per em), as in hayro.
const HINTING_PPEM: std::ops::RangeInclusive<f64> = 4.0..=128.0;

/// What a glyph bitmap is cached under: the glyph, its size and shear, and its sub-pixel phase.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GlyphKey {
    /// The font program (hashed once, when the font was loaded) and the glyph in it.
    glyph: GlyphIdentifier,
    hinted: bool,
    linear: [u64; 4],
    phase: (u8, u8),
}

/// Caches one rendering thread keeps from page to page.
#[derive(Default)]
pub(crate) struct InkCache {
    glyphs: FxHashMap<GlyphKey, Rc<GlyphBits>>,
    /// Bytes the cached glyphs hold.
    glyph_bytes: usize,
    hinting: HintingCache,
    scan: Scan,
    spans: Vec<Span>,
}

/// A clip: the pixels inside `area`, and of those only the ones set in `mask` if there is one.
#[derive(Clone)]
struct Clip {
    area: Window,
    mask: Option<Rc<Mask>>,
}

/// Clip bits for rows `top..top + rows`, one page row (`stride` bytes) each; 1 = inside.
struct Mask {
    top: i32,
    stride: usize,
    bits: Vec<u8>,
}

impl Mask {
    fn row(&self, y: i32) -> Option<&[u8]> {
        let r = usize::try_from(y - self.top).ok()?;
        self.bits.get(r * self.stride..(r + 1) * self.stride)
    }
}

/// The bilevel device: draws one page.
pub(crate) struct Ink<'c> {
    page: Page,
    clips: Vec<Clip>,
    cache: &'c mut InkCache,
    /// Bytes of the clip masks on the stack.
    mask_bytes: usize,
    /// Why this page needs the full-colour renderer, once it does.
    refused: Option<&'static str>,
    in_type3: bool,
}

/// How a page came out of the bilevel device.
pub(crate) enum Drawn {
    Page(Page),
    /// The page uses something a bilevel device does not draw faithfully.
    Refused(&'static str),
}

impl<'c> Ink<'c> {
    pub fn new(page: Page, cache: &'c mut InkCache) -> Self {
        let area = Window {
            x0: 0,
            y0: 0,
            x1: i32::try_from(page.width).unwrap_or(i32::MAX),
            y1: i32::try_from(page.height).unwrap_or(i32::MAX),
        };
        Ink {
            page,
            clips: vec![Clip { area, mask: None }],
            cache,
            mask_bytes: 0,
            refused: None,
            in_type3: false,
        }
    }

    pub fn finish(self) -> Drawn {
        match self.refused {
            None => Drawn::Page(self.page),
            Some(why) => Drawn::Refused(why),
        }
    }

    fn refuse(&mut self, why: &'static str) {
        self.refused.get_or_insert(why);
    }

    fn clip(&self) -> &Clip {
        // clips[0] is the page and is never popped.
        &self.clips[self.clips.len() - 1]
    }

    /// The ink of a paint: `Some(true)` black, `Some(false)` white, `None` nothing to draw
    /// (fully transparent, or refused).
    fn ink(&mut self, paint: &Paint<'_>, soft_mask: bool, blend: BlendMode) -> Option<bool> {
        if self.refused.is_some() {
            return None;
        }
        if soft_mask {
            self.refuse("a soft mask");
            return None;
        }
        if blend != BlendMode::Normal {
            self.refuse("a blend mode");
            return None;
        }
        match paint {
            Paint::Color(c) => {
                let [r, g, b, a] = c.to_rgba().to_rgba8();
                match a {
                    255 => Some(crate::pdf::over_white([r, g, b, 255]) < 128),
                    0 => None,
                    _ => {
                        self.refuse("translucent paint");
                        None
                    }
                }
            }
            Paint::Pattern(_) => {
                self.refuse("a pattern or shading");
                None
            }
        }
    }

    /// Fills a user-space path drawn with `transform`.
    fn fill(&mut self, path: &BezPath, transform: Affine, rule: FillRule, black: bool) {
        let clip = self.clip().area;
        let device = path.iter().map(|el| transform * el);
        let Some(bbox) = scan::control_box(device.clone()) else {
            return;
        };
        if !overlaps(bbox, clip) {
            return;
        }
        if is_axis_aligned(transform)
            && let Some(r) = scan::as_rect(path.elements())
        {
            let w = scan::rect_fill_pixels(transform.transform_rect_bbox(r), clip);
            self.paint_rect(w, black);
            return;
        }
        let mut spans = std::mem::take(&mut self.cache.spans);
        spans.clear();
        let done = self.cache.scan.fill(device, rule.into(), clip, &mut spans);
        match done {
            Ok(()) => self.paint_spans(&spans, 0, 0, black),
            Err(_) => self.refuse("a path too large to rasterize"),
        }
        self.cache.spans = spans;
    }

    /// Strokes a user-space path: its outline (widened to at least a pixel, as PDF asks of
    /// thin lines) is filled.
    fn stroke(
        &mut self,
        path: &BezPath,
        transform: Affine,
        props: &StrokeProps,
        black: bool,
        is_text: bool,
    ) {
        let scale = max_scale(transform);
        if !(scale.is_finite() && scale > 0.0) {
            return;
        }
        let mut width = f64::from(props.line_width).max(0.01 / scale);
        let device_width = width * scale;
        let minimum = if is_text { 0.25 } else { 1.0 };
        if device_width < minimum && !self.in_type3 {
            width *= minimum / device_width;
        }
        let thin = width * scale <= 1.0;
        let cap = match props.line_cap {
            kurbo::Cap::Round if thin => kurbo::Cap::Square,
            c => c,
        };
        let join = match props.line_join {
            kurbo::Join::Round if thin => kurbo::Join::Bevel,
            j => j,
        };
        // Dashes shorter than a pixel in all would only multiply the work: drawn solid.
        let dashes: Vec<f64> = props.dash_array.iter().map(|d| f64::from(*d)).collect();
        let period: f64 = dashes.iter().sum();
        let dashed = !dashes.is_empty()
            && dashes.iter().all(|d| d.is_finite() && *d >= 0.0)
            && period * scale >= 1.0;
        let style = kurbo::Stroke {
            width,
            join,
            miter_limit: f64::from(props.miter_limit),
            start_cap: cap,
            end_cap: cap,
            dash_pattern: if dashed {
                dashes.into()
            } else {
                Default::default()
            },
            dash_offset: f64::from(props.dash_offset),
        };
        let extent = width / 2.0 * style.miter_limit.max(std::f64::consts::SQRT_2);
        let Some(bbox) = scan::control_box(path.iter()) else {
            return;
        };
        let device_box = transform.transform_rect_bbox(bbox.inflate(extent, extent));
        if !overlaps(device_box, self.clip().area) {
            return;
        }
        let outline = kurbo::stroke(
            path.iter(),
            &style,
            &kurbo::StrokeOpts::default(),
            0.1 / scale,
        );
        self.fill(&outline, transform, FillRule::NonZero, black);
    }

    /// Paints the pixels of `w` through the clip.
    fn paint_rect(&mut self, w: Window, black: bool) {
        let clip = &self.clips[self.clips.len() - 1];
        for y in w.y0..w.y1 {
            paint_run(&mut self.page, clip, y, w.x0, w.x1, black);
        }
    }

    /// Paints spans moved by (`dx`, `dy`) through the clip.
    fn paint_spans(&mut self, spans: &[Span], dx: i32, dy: i32, black: bool) {
        let clip = &self.clips[self.clips.len() - 1];
        for s in spans {
            paint_run(
                &mut self.page,
                clip,
                s.y.saturating_add(dy),
                s.x0.saturating_add(dx),
                s.x1.saturating_add(dx),
                black,
            );
        }
    }

    /// Paints columns `x0..x1` of row `y` through the clip.
    fn paint_run(&mut self, y: i32, x0: i32, x1: i32, black: bool) {
        let clip = &self.clips[self.clips.len() - 1];
        paint_run(&mut self.page, clip, y, x0, x1, black);
    }

    /// Pushes a clip given in device space.
    fn push_clip(&mut self, path: &BezPath, rule: FillRule) {
        let prev = self.clip().clone();
        if self.refused.is_some() {
            self.clips.push(prev);
            return;
        }
        if let Some(r) = scan::as_rect(path.elements()) {
            let area = scan::rect_pixels(r, prev.area);
            self.clips.push(Clip {
                area,
                mask: prev.mask,
            });
            return;
        }
        let mut spans = std::mem::take(&mut self.cache.spans);
        spans.clear();
        if self
            .cache
            .scan
            .fill(path.iter(), rule.into(), prev.area, &mut spans)
            .is_err()
        {
            self.refuse("a clip path too large to rasterize");
        }
        let clip = mask_from_spans(&spans, &prev, self.page.stride());
        self.mask_bytes += clip.mask.as_ref().map_or(0, |m| m.bits.len());
        if self.mask_bytes > MAX_MASK_BYTES {
            self.refuse("clip paths nested too deep");
        }
        self.clips.push(clip);
        self.cache.spans = spans;
    }

    /// Draws one outline glyph, from the glyph cache when it is small enough.
    fn fill_glyph(
        &mut self,
        glyph: &OutlineGlyph,
        transform: Affine,
        horizontal: bool,
        black: bool,
    ) {
        let [a, b, c, d, e, f] = transform.as_coeffs();
        let ppem = d.abs() * 1000.0;
        let hinted_outline = if horizontal && b == 0.0 && HINTING_PPEM.contains(&ppem) {
            Some(ppem)
        } else {
            None
        };
        let size = (a.abs() + c.abs()).max(b.abs() + d.abs()) * 1000.0;
        if !(size.is_finite() && e.is_finite() && f.is_finite()) {
            return;
        }
        if size > MAX_CACHED_GLYPH || e.abs() > 1e7 || f.abs() > 1e7 {
            let outline = match hinted_outline {
                Some(ppem) => glyph.hinted_outline(ppem as f32, &self.cache.hinting),
                None => None,
            };
            let t = if outline.is_some() {
                Affine::new([a, b, c, d, e, f.round()])
            } else {
                transform
            };
            let outline = outline.unwrap_or_else(|| glyph.outline());
            self.fill(&outline, t, FillRule::NonZero, black);
            return;
        }
        let quarter = |v: f64| {
            let steps = (v * SUBPIXEL).round() as i64;
            (
                steps.div_euclid(SUBPIXEL as i64) as i32,
                steps.rem_euclid(SUBPIXEL as i64) as u8,
            )
        };
        let (ix, px) = quarter(e);
        let (iy, py) = if hinted_outline.is_some() {
            (f.round() as i32, 0)
        } else {
            quarter(f)
        };
        let key = GlyphKey {
            glyph: glyph.identifier(),
            hinted: hinted_outline.is_some(),
            linear: [a.to_bits(), b.to_bits(), c.to_bits(), d.to_bits()],
            phase: (px, py),
        };
        let bits = match self.cache.glyphs.get(&key) {
            Some(s) => s.clone(),
            None => {
                let hinted = hinted_outline
                    .and_then(|ppem| glyph.hinted_outline(ppem as f32, &self.cache.hinting));
                let outline = hinted.unwrap_or_else(|| glyph.outline());
                let local = Affine::new([
                    a,
                    b,
                    c,
                    d,
                    f64::from(px) / SUBPIXEL,
                    f64::from(py) / SUBPIXEL,
                ]);
                let bits = Rc::new(GlyphBits::new(self.rasterize_glyph(&outline, local)));
                if self.cache.glyph_bytes > MAX_CACHED_GLYPH_BYTES {
                    self.cache.glyphs.clear();
                    self.cache.glyph_bytes = 0;
                }
                self.cache.glyph_bytes += bits.bytes();
                self.cache.glyphs.insert(key, bits.clone());
                bits
            }
        };
        self.blit(&bits, ix, iy, black);
    }

    /// Copies a cached glyph with its origin at (`dx`, `dy`): whole words per row when it lies
    /// inside an unmasked clip, else span by span through the clip.
    fn blit(&mut self, g: &GlyphBits, dx: i32, dy: i32, black: bool) {
        let clip = &self.clips[self.clips.len() - 1];
        let (Some(x0), Some(y0)) = (g.left.checked_add(dx), g.top.checked_add(dy)) else {
            return;
        };
        let a = clip.area;
        let inside = clip.mask.is_none()
            && x0 >= a.x0
            && y0 >= a.y0
            && x0.saturating_add(g.width) <= a.x1
            && y0.saturating_add(g.height) <= a.y1;
        if !inside {
            return self.paint_spans(&g.spans, dx, dy, black);
        }
        // Inside the clip area, which lies inside the page: the casts cannot wrap.
        let stride = self.page.stride();
        let Some(below) = self.page.data.get_mut(y0 as usize * stride..) else {
            return;
        };
        for (row, words) in below
            .chunks_exact_mut(stride)
            .zip(g.bits.chunks_exact(g.words.max(1)))
        {
            for (k, &w) in words.iter().enumerate() {
                if w != 0 {
                    or_word(row, x0 as usize + 64 * k, w, black);
                }
            }
        }
    }

    /// A glyph outline's spans relative to its origin.
    fn rasterize_glyph(&mut self, outline: &BezPath, local: Affine) -> Vec<Span> {
        let device = outline.iter().map(|el| local * el);
        let Some(b) = scan::control_box(device.clone()) else {
            return Vec::new();
        };
        let window = Window {
            x0: b.x0.floor() as i32 - 1,
            y0: b.y0.floor() as i32 - 1,
            x1: b.x1.ceil() as i32 + 1,
            y1: b.y1.ceil() as i32 + 1,
        };
        let mut spans = Vec::new();
        // Sizes are bounded by MAX_CACHED_GLYPH, so a glyph cannot be too large.
        let _ = self
            .cache
            .scan
            .fill(device, Rule::NonZero, window, &mut spans);
        spans
    }

    /// Draws an image mask in `black`/white, or a picture thresholded at mid-grey.
    fn image(&mut self, image: Image<'_, '_>, transform: Affine) {
        let (w, h) = (f64::from(image.width()), f64::from(image.height()));
        let bbox = transform.transform_rect_bbox(Rect::new(0.0, 0.0, w, h));
        if !overlaps(bbox, self.clip().area) {
            return;
        }
        let (x, y) = x_y_advances(&transform);
        let target = (
            (x.length() * w).ceil().clamp(1.0, 65_535.0) as u32,
            (y.length() * h).ceil().clamp(1.0, 65_535.0) as u32,
        );
        match image {
            Image::Stencil(s) => {
                s.with_stencil(
                    |stencil, paint| {
                        let Some(black) = self.ink(paint, false, BlendMode::Normal) else {
                            return;
                        };
                        let t = scaled(transform, &stencil);
                        let (img, t) = Picture::luma(stencil, t);
                        self.sample(&img, t, |(v, _)| (v >= 128).then_some(black));
                    },
                    Some(target),
                );
            }
            Image::Raster(r) => {
                r.with_rgba(
                    |data, alpha| {
                        let (sx, sy) = data.scale_factors();
                        let t = transform * Affine::scale_non_uniform(f64::from(sx), f64::from(sy));
                        let (img, t) = Picture::of(data, alpha, t);
                        // Dark is black; light is white where the picture is opaque.
                        self.sample(&img, t, |(v, a)| {
                            if v < 128 {
                                Some(true)
                            } else {
                                (a >= 128).then_some(false)
                            }
                        });
                    },
                    Some(target),
                );
            }
        }
    }

    /// Samples a picture at every device pixel centre it covers (after box-filtering it
    /// down to about the device resolution) and paints what `ink` says.
    fn sample(&mut self, img: &Picture, t: Affine, ink: impl Fn((u8, u8)) -> Option<bool>) {
        let Some(inv) = invert(t) else {
            return;
        };
        let area = self.clip().area;
        let bbox = t.transform_rect_bbox(Rect::new(
            0.0,
            0.0,
            f64::from(img.width),
            f64::from(img.height),
        ));
        let w = scan::rect_pixels(bbox.inflate(1.0, 1.0), area);
        let [ia, ib, ic, id, ie, if_] = inv.as_coeffs();
        let (iw, ih) = (f64::from(img.width), f64::from(img.height));
        for y in w.y0..w.y1 {
            let cy = f64::from(y) + 0.5;
            let mut x = w.x0;
            while x < w.x1 {
                let cx = f64::from(x) + 0.5;
                let u = ia * cx + ic * cy + ie;
                let v = ib * cx + id * cy + if_;
                let mut run_end = x + 1;
                if u >= 0.0 && v >= 0.0 && u < iw && v < ih {
                    let value = img.at(u as u32, v as u32);
                    if let Some(black) = ink(value) {
                        // Neighbours mapping to the same ink join one run.
                        while run_end < w.x1 {
                            let cx = f64::from(run_end) + 0.5;
                            let u = ia * cx + ic * cy + ie;
                            let v = ib * cx + id * cy + if_;
                            if !(u >= 0.0 && v >= 0.0 && u < iw && v < ih)
                                || ink(img.at(u as u32, v as u32)) != Some(black)
                            {
                                break;
                            }
                            run_end += 1;
                        }
                        self.paint_run(y, x, run_end, black);
                    }
                }
                x = run_end;
            }
        }
    }
}

/// A rasterized glyph: its spans relative to its origin, and the same pixels as rows of
/// 64-bit words (most significant bit leftmost) from column `left`, row `top`.
struct GlyphBits {
    spans: Box<[Span]>,
    left: i32,
    top: i32,
    width: i32,
    height: i32,
    /// Words per row.
    words: usize,
    bits: Box<[u64]>,
}

impl GlyphBits {
    /// Memory held, roughly.
    fn bytes(&self) -> usize {
        size_of::<Self>()
            + self.spans.len() * size_of::<Span>()
            + self.bits.len() * size_of::<u64>()
    }

    fn new(spans: Vec<Span>) -> Self {
        let left = spans.iter().map(|s| s.x0).min().unwrap_or(0);
        let right = spans.iter().map(|s| s.x1).max().unwrap_or(0);
        let top = spans.first().map_or(0, |s| s.y);
        let bottom = spans.last().map_or(0, |s| s.y + 1);
        let (width, height) = ((right - left).max(0), (bottom - top).max(0));
        let words = (width as usize).div_ceil(64);
        let mut bits = vec![0u64; words * height as usize];
        for s in &spans {
            let row = (s.y - top) as usize * words;
            for x in (s.x0 - left) as usize..(s.x1 - left) as usize {
                bits[row + x / 64] |= 1 << (63 - x % 64);
            }
        }
        GlyphBits {
            spans: spans.into(),
            left,
            top,
            width,
            height,
            words,
            bits: bits.into(),
        }
    }
}

/// Sets (`black`) or clears the pixels of `w` (MSB leftmost) at column `x` of a packed row.
#[inline]
fn or_word(row: &mut [u8], x: usize, w: u64, black: bool) {
    let (b, s) = (x / 8, x % 8);
    // The word's pixels spread over nine bytes from `b`.
    let wide = (u128::from(w) << 64 >> s).to_be_bytes();
    let bytes = &wide[..9];
    if let Some(dst) = row.get_mut(b..b + 8) {
        let mut cur = u64::from_be_bytes(dst.try_into().unwrap_or([0; 8]));
        let add = w >> s;
        cur = if black { cur | add } else { cur & !add };
        dst.copy_from_slice(&cur.to_be_bytes());
        if let Some(last) = row.get_mut(b + 8) {
            *last = if black {
                *last | bytes[8]
            } else {
                *last & !bytes[8]
            };
        }
        return;
    }
    // Near the end of the row: byte by byte.
    for (dst, src) in row.iter_mut().skip(b).zip(bytes) {
        *dst = if black { *dst | src } else { *dst & !src };
    }
}

/// A picture reduced to grey over white paper (0 black), or a stencil's coverage (255
/// inked), with the picture's own opacity when it has one.
struct Picture {
    width: u32,
    height: u32,
    data: Vec<u8>,
    alpha: Option<Vec<u8>>,
}

impl Picture {
    /// The value and opacity at (x, y).
    fn at(&self, x: u32, y: u32) -> (u8, u8) {
        let i = y as usize * self.width as usize + x as usize;
        let v = self.data.get(i).copied().unwrap_or(0);
        let a = self
            .alpha
            .as_ref()
            .map_or(255, |a| a.get(i).copied().unwrap_or(0));
        (v, a)
    }

    /// A stencil's coverage, box-filtered when the device shows it smaller than its pixels.
    fn luma(stencil: LumaData, t: Affine) -> (Picture, Affine) {
        Picture {
            width: stencil.width,
            height: stencil.height,
            data: stencil.data,
            alpha: None,
        }
        .fit(t)
    }

    /// A picture as grey over white paper (alpha composited), box-filtered like `luma`.
    fn of(data: ImageData, alpha: Option<LumaData>, t: Affine) -> (Picture, Affine) {
        let (width, height) = (data.width(), data.height());
        let mut grey: Vec<u8> = match data {
            ImageData::Luma(l) => l.data,
            ImageData::Rgb(rgb) => rgb
                .data
                .as_chunks::<3>()
                .0
                .iter()
                .map(|&[r, g, b]| crate::pdf::over_white([r, g, b, 255]).min(255) as u8)
                .collect(),
        };
        let alpha = alpha
            .filter(|a| a.width == width && a.height == height)
            .map(|a| a.data);
        if let Some(a) = &alpha {
            for (g, a) in grey.iter_mut().zip(a) {
                // Over white: g·a + 255·(1 − a).
                let (gv, av) = (u32::from(*g), u32::from(*a));
                *g = ((gv * av + 255 * (255 - av)) / 255) as u8;
            }
        }
        Picture {
            width,
            height,
            data: grey,
            alpha,
        }
        .fit(t)
    }

    /// Averages whole blocks of pixels where the device shows the picture at less than one
    /// device pixel per picture pixel, so thin lines darken a pixel rather than vanish.
    fn fit(self, t: Affine) -> (Picture, Affine) {
        let (x, y) = x_y_advances(&t);
        let kx = (1.0 / x.length()).floor().clamp(1.0, 64.0) as u32;
        let ky = (1.0 / y.length()).floor().clamp(1.0, 64.0) as u32;
        let size = self.width as usize * self.height as usize;
        if kx == 1 && ky == 1
            || self.data.len() != size
            || self.alpha.as_ref().is_some_and(|a| a.len() != size)
        {
            return (self, t);
        }
        let reduce = |data: &[u8]| box_filter(data, self.width, self.height, kx, ky);
        let picture = Picture {
            width: self.width.div_ceil(kx),
            height: self.height.div_ceil(ky),
            data: reduce(&self.data),
            alpha: self.alpha.as_deref().map(reduce),
        };
        (
            picture,
            t * Affine::scale_non_uniform(f64::from(kx), f64::from(ky)),
        )
    }
}

/// The means of `kx` × `ky` blocks of a `width` × `height` channel.
fn box_filter(data: &[u8], width: u32, height: u32, kx: u32, ky: u32) -> Vec<u8> {
    let (w, h) = (width.div_ceil(kx) as usize, height.div_ceil(ky));
    let mut sums = vec![0u32; w];
    let mut counts = vec![0u32; w];
    let mut out = Vec::with_capacity(w * h as usize);
    for by in 0..h {
        sums.fill(0);
        counts.fill(0);
        for row in data
            .chunks_exact(width as usize)
            .skip((by * ky) as usize)
            .take(ky as usize)
        {
            for (x, v) in row.iter().enumerate() {
                let b = x / kx as usize;
                sums[b] += u32::from(*v);
                counts[b] += 1;
            }
        }
        out.extend(
            sums.iter()
                .zip(&counts)
                .map(|(s, c)| (s / (*c).max(1)) as u8),
        );
    }
    out
}

fn scaled(t: Affine, d: &LumaData) -> Affine {
    t * Affine::scale_non_uniform(f64::from(d.scale_factors.0), f64::from(d.scale_factors.1))
}

fn invert(t: Affine) -> Option<Affine> {
    let det = t.determinant();
    (det.is_finite() && det.abs() > 1e-12).then(|| t.inverse())
}

/// A new clip from the spans of a clip path (within `prev`'s area) and `prev`'s mask.
fn mask_from_spans(spans: &[Span], prev: &Clip, stride: usize) -> Clip {
    let (Some(first), Some(last)) = (spans.first(), spans.last()) else {
        return Clip {
            area: Window {
                x0: 0,
                y0: 0,
                x1: 0,
                y1: 0,
            },
            mask: None,
        };
    };
    let (top, bottom) = (first.y, last.y + 1);
    let rows = usize::try_from(bottom - top).unwrap_or(0);
    let mut bits = vec![0u8; rows * stride];
    let (mut x0, mut x1) = (i32::MAX, i32::MIN);
    for s in spans {
        let r = (s.y - top) as usize;
        let row = &mut bits[r * stride..(r + 1) * stride];
        let (a, b) = (s.x0.max(0) as usize, s.x1.max(0) as usize);
        let outer = prev.mask.as_ref().and_then(|m| m.row(s.y));
        if prev.mask.is_some() && outer.is_none() {
            continue;
        }
        paint_bits(row, a, b, true, outer);
        x0 = x0.min(s.x0);
        x1 = x1.max(s.x1);
    }
    Clip {
        area: Window {
            x0: x0.max(prev.area.x0),
            y0: top.max(prev.area.y0),
            x1: x1.min(prev.area.x1),
            y1: bottom.min(prev.area.y1),
        },
        mask: Some(Rc::new(Mask { top, stride, bits })),
    }
}

/// Paints columns `x0..x1` of row `y` black or white, where `clip` lets it.
#[inline]
fn paint_run(page: &mut Page, clip: &Clip, y: i32, x0: i32, x1: i32, black: bool) {
    let area = clip.area;
    let (x0, x1) = (x0.max(area.x0), x1.min(area.x1));
    if y < area.y0 || y >= area.y1 || x0 >= x1 {
        return;
    }
    // The clip area lies inside the page, so these are non-negative.
    let (row, x0, x1) = (y as usize, x0 as usize, x1 as usize);
    let stride = page.stride();
    let mask = match &clip.mask {
        None => None,
        // A masked clip's area lies within its mask's rows; outside them nothing shows.
        Some(m) => match m.row(y) {
            Some(bits) => Some(bits),
            None => return,
        },
    };
    if let Some(bits) = page.data.get_mut(row * stride..(row + 1) * stride) {
        paint_bits(bits, x0, x1, black, mask);
    }
}

/// Sets (`black`) or clears bits `x0..x1` of a packed row, only where `mask` has 1s.
fn paint_bits(row: &mut [u8], x0: usize, x1: usize, black: bool, mask: Option<&[u8]>) {
    let x1 = x1.min(row.len() * 8);
    if x0 >= x1 {
        return;
    }
    let (first, last) = (x0 / 8, (x1 - 1) / 8);
    let head = 0xFFu8 >> (x0 % 8);
    let tail = 0xFFu8 << (7 - (x1 - 1) % 8);
    let apply = |b: &mut u8, m: u8| {
        if black {
            *b |= m;
        } else {
            *b &= !m;
        }
    };
    let Some(bytes) = row.get_mut(first..=last) else {
        return;
    };
    match (mask, bytes) {
        (None, [only]) => apply(only, head & tail),
        (None, [a, middle @ .., z]) => {
            apply(a, head);
            middle.fill(if black { 0xFF } else { 0 });
            apply(z, tail);
        }
        (None, []) => {}
        (Some(mask), bytes) => {
            let Some(mask) = mask.get(first..=last) else {
                return;
            };
            let n = bytes.len();
            for (i, (b, m)) in bytes.iter_mut().zip(mask).enumerate() {
                let mut edge = 0xFF;
                if i == 0 {
                    edge &= head;
                }
                if i == n - 1 {
                    edge &= tail;
                }
                apply(b, edge & m);
            }
        }
    }
}

fn overlaps(r: Rect, w: Window) -> bool {
    r.x1 >= f64::from(w.x0) - 1.0
        && r.x0 <= f64::from(w.x1) + 1.0
        && r.y1 >= f64::from(w.y0) - 1.0
        && r.y0 <= f64::from(w.y1) + 1.0
        && w.x0 < w.x1
        && w.y0 < w.y1
}

fn is_axis_aligned(t: Affine) -> bool {
    let [_, b, c, _, _, _] = t.as_coeffs();
    b == 0.0 && c == 0.0
}

/// The larger of the lengths a unit step along x or y takes under `t`.
fn max_scale(t: Affine) -> f64 {
    let (x, y) = x_y_advances(&t);
    x.length().max(y.length())
}

impl From<FillRule> for Rule {
    fn from(r: FillRule) -> Self {
        match r {
            FillRule::NonZero => Rule::NonZero,
            FillRule::EvenOdd => Rule::EvenOdd,
        }
    }
}

impl<'a> Device<'a> for Ink<'_> {
    fn draw_path(&mut self, path: &BezPath, props: DrawProps<'a>, draw_mode: &DrawMode) {
        let Some(black) = self.ink(&props.paint, props.soft_mask.is_some(), props.blend_mode)
        else {
            return;
        };
        match draw_mode {
            DrawMode::Fill(rule) => self.fill(path, props.transform, *rule, black),
            DrawMode::Stroke(s) => self.stroke(path, props.transform, s, black, false),
            DrawMode::FillAndStroke(rule, s) => {
                self.fill(path, props.transform, *rule, black);
                self.stroke(path, props.transform, s, black, false);
            }
            DrawMode::Invisible => {}
        }
    }

    fn push_clip_path(&mut self, clip_path: &ClipPath) {
        self.push_clip(&clip_path.path, clip_path.fill);
    }

    fn push_clip_rect(&mut self, rect: &Rect) {
        let prev = self.clip().clone();
        self.clips.push(Clip {
            area: scan::rect_pixels(*rect, prev.area),
            mask: prev.mask,
        });
    }

    fn push_transparency_group(
        &mut self,
        opacity: f32,
        mask: Option<SoftMask<'a>>,
        blend_mode: BlendMode,
    ) {
        // An opaque, unmasked, normally blended group paints exactly what its content paints.
        if opacity < 1.0 || mask.is_some() || blend_mode != BlendMode::Normal {
            self.refuse("a translucent or masked group");
        }
    }

    fn draw_glyph_run(
        &mut self,
        glyph_run: &GlyphRun<'_, 'a>,
        props: DrawProps<'a>,
        draw_mode: &DrawMode,
    ) {
        let Some(black) = self.ink(&props.paint, props.soft_mask.is_some(), props.blend_mode)
        else {
            return;
        };
        let horizontal = glyph_run.writing_mode() == WritingMode::Horizontal;
        let (fill, stroke) = match draw_mode {
            DrawMode::Fill(_) => (true, None),
            DrawMode::Stroke(s) => (false, Some(s)),
            DrawMode::FillAndStroke(_, s) => (true, Some(s)),
            DrawMode::Invisible => return,
        };
        for glyph in glyph_run.glyphs() {
            let placed = glyph.transform();
            match &**glyph {
                Glyph::Outline(outline) => {
                    if fill {
                        self.fill_glyph(outline, props.transform * placed, horizontal, black);
                    }
                    if let Some(s) = stroke {
                        let path = placed * outline.outline();
                        self.stroke(&path, props.transform, s, black, true);
                    }
                }
                Glyph::Type3(t3) => {
                    let was = std::mem::replace(&mut self.in_type3, true);
                    t3.interpret(self, props.transform, placed, &props.paint);
                    self.in_type3 = was;
                }
            }
            if self.refused.is_some() {
                return;
            }
        }
    }

    fn draw_image(&mut self, image: Image<'a, '_>, props: ImageDrawProps<'a>) {
        if self.refused.is_some() {
            return;
        }
        if props.soft_mask.is_some() {
            return self.refuse("a soft mask");
        }
        if props.blend_mode != BlendMode::Normal {
            return self.refuse("a blend mode");
        }
        self.image(image, props.transform);
    }

    fn pop_clip(&mut self) {
        if self.clips.len() > 1
            && let Some(clip) = self.clips.pop()
            && let Some(mask) = clip.mask
            && Rc::strong_count(&mask) == 1
        {
            self.mask_bytes -= mask.bits.len();
        }
    }

    fn pop_transparency_group(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glyph_words_land_where_their_spans_do() {
        let spans = vec![
            Span {
                y: -2,
                x0: -3,
                x1: 70,
            },
            Span {
                y: -1,
                x0: 0,
                x1: 1,
            },
            Span { y: 0, x0: 5, x1: 9 },
        ];
        let g = GlyphBits::new(spans.clone());
        assert_eq!(
            (g.left, g.top, g.width, g.height, g.words),
            (-3, -2, 73, 3, 2)
        );
        // Inside the page (whole words), and cut by its right and top edges (spans).
        for (dx, dy, black) in [
            (3, 2, 78),
            (10, 5, 78),
            (123, 7, 78),
            (140, 2, 63 + 1 + 4),
            (3, 0, 4),
        ] {
            let blank = Page::blank(200, 10, 204, 196);
            let mut cache = InkCache::default();
            let mut by_words = Ink::new(blank.clone(), &mut cache);
            by_words.blit(&g, dx, dy, true);
            let words = by_words.page.clone();
            let mut cache = InkCache::default();
            let mut by_spans = Ink::new(blank, &mut cache);
            by_spans.paint_spans(&spans, dx, dy, true);
            assert_eq!(words, by_spans.page, "at {dx}, {dy}");
            assert_eq!(words.black_pixels(), black, "at {dx}, {dy}");
            // White ink clears exactly those pixels again.
            by_words.blit(&g, dx, dy, false);
            assert_eq!(by_words.page.black_pixels(), 0);
        }
    }

    #[test]
    fn bits_are_painted_through_a_mask() {
        let mut row = [0u8; 4];
        paint_bits(&mut row, 3, 21, true, None);
        assert_eq!(row, [0b0001_1111, 0xFF, 0b1111_1000, 0]);
        paint_bits(&mut row, 0, 32, false, Some(&[0xF0, 0x0F, 0xFF, 0xFF]));
        assert_eq!(row, [0b0000_1111, 0xF0, 0, 0]);
        // Out-of-row columns are ignored, not a panic.
        paint_bits(&mut row, 30, 1000, true, None);
        assert_eq!(row[3], 0b0000_0011);
    }
}
