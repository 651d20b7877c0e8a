//! The bundled monospace font (DejaVu Sans Mono, Bitstream Vera licence, see
//! `assets/LICENSE-DejaVu.txt`) rasterized straight onto bilevel pages.

use std::collections::HashMap;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};

use crate::page::Page;

static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");

/// Coverage at or above which a pixel is inked; a little under half keeps thin
/// horizontal strokes at 98 lines/inch.
const INK: f32 = 0.4;

fn font() -> Option<FontRef<'static>> {
    FontRef::try_from_slice(FONT_BYTES).ok()
}

/// Advance width of one cell as a fraction of the font size (the font is monospaced).
pub(crate) fn advance_em() -> f32 {
    font()
        .map(|f| {
            let id = f.glyph_id('M');
            f.h_advance_unscaled(id) / f.units_per_em().unwrap_or(2048.0)
        })
        .unwrap_or(0.6)
}

struct Glyph {
    left: i32,
    top: i32,
    width: u32,
    height: u32,
    ink: Vec<bool>,
}

/// The font at one size on one pixel grid, with a cache of rasterized glyphs.
pub(crate) struct Typeface {
    font: Option<FontRef<'static>>,
    scale: PxScale,
    cache: HashMap<char, Option<Glyph>>,
}

impl Typeface {
    /// `size_pt` points on a grid of `x_dpi` × `y_dpi`; non-square pixels get a
    /// non-uniform scale so letters keep their shape on paper.
    pub fn new(size_pt: f32, x_dpi: u32, y_dpi: u32) -> Self {
        let font = font();
        // ab_glyph scales ascent − descent to the given pixels; a point size is per em.
        let height_em = font
            .as_ref()
            .map(|f| f.height_unscaled() / f.units_per_em().unwrap_or(2048.0))
            .unwrap_or(1.0);
        Typeface {
            font,
            scale: PxScale {
                x: size_pt * height_em * x_dpi as f32 / 72.0,
                y: size_pt * height_em * y_dpi as f32 / 72.0,
            },
            cache: HashMap::new(),
        }
    }

    /// Horizontal advance of one cell in pixels.
    pub fn advance(&self) -> f32 {
        self.font
            .as_ref()
            .map(|f| f.as_scaled(self.scale).h_advance(f.glyph_id('M')))
            .unwrap_or(self.scale.x * 0.6)
    }

    /// Distance from the top of a line to its baseline in pixels.
    pub fn ascent(&self) -> f32 {
        self.font
            .as_ref()
            .map(|f| f.as_scaled(self.scale).ascent())
            .unwrap_or(self.scale.y * 0.8)
    }

    fn glyph(&mut self, c: char) -> Option<&Glyph> {
        let (font, scale) = (&self.font, self.scale);
        self.cache
            .entry(c)
            .or_insert_with(|| {
                let font = font.as_ref()?;
                let glyph = font.glyph_id(c).with_scale(scale);
                let outline = font.outline_glyph(glyph)?;
                let b = outline.px_bounds();
                let (width, height) = (b.width() as u32, b.height() as u32);
                let mut ink = vec![false; width as usize * height as usize];
                outline.draw(|x, y, cov| {
                    if let Some(p) = ink.get_mut(y as usize * width as usize + x as usize) {
                        *p = cov >= INK;
                    }
                });
                Some(Glyph {
                    left: b.min.x as i32,
                    top: b.min.y as i32,
                    width,
                    height,
                    ink,
                })
            })
            .as_ref()
    }

    /// Draws `text` on one line, first cell's left edge at `x`, baseline at `baseline`;
    /// returns the x after the last cell. Ink outside the page is dropped.
    pub fn draw(&mut self, page: &mut Page, x: f32, baseline: i32, text: &str) -> f32 {
        let adv = self.advance();
        let mut pen = x;
        for c in text.chars() {
            if !c.is_whitespace()
                && let Some(g) = self.glyph(c)
            {
                let gx = pen.round() as i32 + g.left;
                let gy = baseline + g.top;
                for row in 0..g.height {
                    for col in 0..g.width {
                        if g.ink.get((row * g.width + col) as usize) == Some(&true) {
                            let (px, py) = (gx + col as i32, gy + row as i32);
                            if px >= 0 && py >= 0 {
                                page.set(px as u32, py as u32, true);
                            }
                        }
                    }
                }
            }
            pen += adv;
        }
        pen
    }
}
