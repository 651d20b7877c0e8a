//! A rendered bilevel page in the shared bitmap convention.

/// A bilevel fax page: `width` × `height` pixels, one bit each, rows padded to whole
/// bytes (`stride = (width + 7) / 8`), most significant bit leftmost, 1 = black.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Pixels per row (the fax scan-line width).
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Horizontal dots per inch.
    pub x_dpi: u32,
    /// Vertical lines per inch.
    pub y_dpi: u32,
    /// Packed rows, `stride() * height` bytes.
    pub data: Vec<u8>,
}

impl Page {
    /// An all-white page.
    pub fn blank(width: u32, height: u32, x_dpi: u32, y_dpi: u32) -> Self {
        let stride = width.div_ceil(8) as usize;
        Page {
            width,
            height,
            x_dpi,
            y_dpi,
            data: vec![0; stride * height as usize],
        }
    }

    /// Bytes per row.
    pub fn stride(&self) -> usize {
        self.width.div_ceil(8) as usize
    }

    /// One packed row, or `None` past the last row.
    pub fn row(&self, y: u32) -> Option<&[u8]> {
        let s = self.stride();
        let start = s.checked_mul(y as usize)?;
        self.data.get(start..start + s)
    }

    /// Whether pixel (x, y) is black; pixels outside the page are white.
    pub fn get(&self, x: u32, y: u32) -> bool {
        if x >= self.width {
            return false;
        }
        self.row(y)
            .and_then(|r| r.get((x / 8) as usize))
            .is_some_and(|b| b & (0x80 >> (x % 8)) != 0)
    }

    /// Paints pixel (x, y) black or white; pixels outside the page are ignored.
    pub fn set(&mut self, x: u32, y: u32, black: bool) {
        if x >= self.width || y >= self.height {
            return;
        }
        let i = y as usize * self.stride() + (x / 8) as usize;
        if let Some(b) = self.data.get_mut(i) {
            let m = 0x80u8 >> (x % 8);
            if black {
                *b |= m;
            } else {
                *b &= !m;
            }
        }
    }

    /// Paints a rectangle white (clipped to the page).
    pub fn clear_rows(&mut self, y0: u32, y1: u32) {
        let s = self.stride();
        let a = (y0.min(self.height) as usize) * s;
        let b = (y1.min(self.height) as usize) * s;
        if let Some(rows) = self.data.get_mut(a..b) {
            rows.fill(0);
        }
    }

    /// Number of black pixels.
    pub fn black_pixels(&self) -> u64 {
        // Padding bits are always 0, so counting whole bytes is exact.
        self.data.iter().map(|b| u64::from(b.count_ones())).sum()
    }
}
