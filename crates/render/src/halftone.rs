//! Greyscale canvases, resampling, and grey → bilevel conversion.

use crate::geometry::Halftone;
use crate::page::Page;

/// An 8-bit greyscale picture, 0 = black, 255 = white.
#[derive(Debug, Clone)]
pub(crate) struct Grey {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl Grey {
    pub fn white(width: u32, height: u32) -> Self {
        Grey {
            width,
            height,
            data: vec![255; width as usize * height as usize],
        }
    }

    /// Copies `src` with its top-left corner at (x, y), clipped.
    pub fn paste(&mut self, src: &Grey, x: u32, y: u32) {
        let w = src.width.min(self.width.saturating_sub(x)) as usize;
        for sy in 0..src.height.min(self.height.saturating_sub(y)) as usize {
            let s = sy * src.width as usize;
            let d = (y as usize + sy) * self.width as usize + x as usize;
            if let (Some(dst), Some(from)) = (self.data.get_mut(d..d + w), src.data.get(s..s + w)) {
                dst.copy_from_slice(from);
            }
        }
    }

    /// Resamples to `width` × `height`: area averaging when shrinking, linear
    /// interpolation when enlarging, one axis at a time.
    pub fn resize(&self, width: u32, height: u32) -> Grey {
        if (width, height) == (self.width, self.height) {
            return self.clone();
        }
        let xw = weights(self.width, width);
        let yw = weights(self.height, height);
        let (sw, sh) = (self.width as usize, self.height as usize);
        // Horizontal pass: sh rows of `width` samples.
        let mut mid = vec![0u8; width as usize * sh];
        for y in 0..sh {
            let src = self.data.get(y * sw..(y + 1) * sw).unwrap_or(&[]);
            let dst = &mut mid[y * width as usize..(y + 1) * width as usize];
            for (d, (start, ws)) in dst.iter_mut().zip(&xw) {
                let acc: f32 = ws
                    .iter()
                    .enumerate()
                    .map(|(k, w)| w * f32::from(src.get(start + k).copied().unwrap_or(255)))
                    .sum();
                *d = acc.round().clamp(0.0, 255.0) as u8;
            }
        }
        // Vertical pass.
        let w = width as usize;
        let mut out = vec![0u8; w * height as usize];
        let mut acc = vec![0f32; w];
        for (y, (start, ws)) in yw.iter().enumerate() {
            acc.fill(0.0);
            for (k, wt) in ws.iter().enumerate() {
                if let Some(row) = mid.get((start + k) * w..(start + k + 1) * w) {
                    for (a, &p) in acc.iter_mut().zip(row) {
                        *a += wt * f32::from(p);
                    }
                }
            }
            for (o, a) in out[y * w..(y + 1) * w].iter_mut().zip(&acc) {
                *o = a.round().clamp(0.0, 255.0) as u8;
            }
        }
        Grey {
            width,
            height,
            data: out,
        }
    }

    /// Whether the picture looks like text or line art: nearly all pixels near black or
    /// near white. Photographs have a broad histogram and are dithered instead.
    pub fn is_bimodal(&self) -> bool {
        let mut hist = [0u64; 256];
        for &p in &self.data {
            hist[p as usize] += 1;
        }
        let total: u64 = hist.iter().sum();
        let extremes: u64 = hist[..64].iter().chain(&hist[192..]).sum();
        total == 0 || extremes * 100 >= total * 90
    }

    /// Converts to a bilevel page.
    pub fn to_page(&self, halftone: Halftone, x_dpi: u32, y_dpi: u32) -> Page {
        let dither = match halftone {
            Halftone::Auto => !self.is_bimodal(),
            Halftone::Threshold => false,
            Halftone::Dither => true,
        };
        if dither {
            self.dither(x_dpi, y_dpi)
        } else {
            self.threshold(x_dpi, y_dpi)
        }
    }

    fn threshold(&self, x_dpi: u32, y_dpi: u32) -> Page {
        let mut page = Page::blank(self.width, self.height, x_dpi, y_dpi);
        let stride = page.stride();
        let w = self.width as usize;
        if w == 0 {
            return page;
        }
        for (src, dst) in self
            .data
            .chunks_exact(w)
            .zip(page.data.chunks_exact_mut(stride))
        {
            for (x, &p) in src.iter().enumerate() {
                if p < 128 {
                    dst[x / 8] |= 0x80 >> (x % 8);
                }
            }
        }
        page
    }

    /// Floyd–Steinberg error diffusion, serpentine so the error does not drift to one side.
    fn dither(&self, x_dpi: u32, y_dpi: u32) -> Page {
        let mut page = Page::blank(self.width, self.height, x_dpi, y_dpi);
        let stride = page.stride();
        let w = self.width as usize;
        if w == 0 {
            return page;
        }
        // Error rows carry one guard cell each side.
        let mut cur = vec![0i32; w + 2];
        let mut next = vec![0i32; w + 2];
        for (y, (src, dst)) in self
            .data
            .chunks_exact(w)
            .zip(page.data.chunks_exact_mut(stride))
            .enumerate()
        {
            next.fill(0);
            let ltr = y % 2 == 0;
            for i in 0..w {
                let x = if ltr { i } else { w - 1 - i };
                let c = x + 1;
                let v = i32::from(src[x]) * 16 + cur[c];
                let black = v < 128 * 16;
                if black {
                    dst[x / 8] |= 0x80 >> (x % 8);
                }
                let err = v - if black { 0 } else { 255 * 16 };
                let (ahead, behind) = if ltr { (c + 1, c - 1) } else { (c - 1, c + 1) };
                cur[ahead] += err * 7 / 16;
                next[behind] += err * 3 / 16;
                next[c] += err * 5 / 16;
                next[ahead] += err / 16;
            }
            std::mem::swap(&mut cur, &mut next);
        }
        page
    }
}

/// For each output index: the first source index and the weights of consecutive sources.
fn weights(src: u32, dst: u32) -> Vec<(usize, Vec<f32>)> {
    let (s, d) = (f64::from(src), f64::from(dst));
    let ratio = s / d;
    (0..dst)
        .map(|i| {
            let i = f64::from(i);
            if ratio >= 1.0 {
                // Box filter over [i·r, (i+1)·r).
                let a = i * ratio;
                let b = ((i + 1.0) * ratio).min(s);
                let first = a.floor() as usize;
                let last = (b.ceil() as usize).max(first + 1);
                let ws = (first..last)
                    .map(|k| {
                        let k = k as f64;
                        ((b.min(k + 1.0) - a.max(k)).max(0.0) / (b - a)) as f32
                    })
                    .collect();
                (first, ws)
            } else {
                let c = ((i + 0.5) * ratio - 0.5).clamp(0.0, s - 1.0);
                let first = c.floor() as usize;
                let t = (c - c.floor()) as f32;
                if first + 1 < src as usize {
                    (first, vec![1.0 - t, t])
                } else {
                    (first, vec![1.0])
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grey(w: u32, h: u32, f: impl Fn(u32, u32) -> u8) -> Grey {
        let data = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .map(|(x, y)| f(x, y))
            .collect();
        Grey {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn dithering_mid_grey_blackens_about_half() {
        let g = grey(200, 200, |_, _| 128);
        let p = g.to_page(Halftone::Dither, 204, 196);
        let ratio = p.black_pixels() as f64 / 40000.0;
        assert!((ratio - 0.5).abs() < 0.02, "{ratio}");
    }

    #[test]
    fn auto_thresholds_text_and_dithers_ramps() {
        let text = grey(
            100,
            100,
            |x, y| if (x / 10 + y / 10) % 2 == 0 { 0 } else { 255 },
        );
        assert!(text.is_bimodal());
        let ramp = grey(256, 10, |x, _| x as u8);
        assert!(!ramp.is_bimodal());
        // A flat light grey dithers to scattered black; thresholding gives none.
        let light = grey(64, 64, |_, _| 160);
        assert_eq!(light.to_page(Halftone::Threshold, 1, 1).black_pixels(), 0);
        assert!(light.to_page(Halftone::Auto, 1, 1).black_pixels() > 800);
    }

    #[test]
    fn resize_keeps_mean_brightness() {
        let g = grey(300, 300, |x, y| ((x * 7 + y * 3) % 256) as u8);
        let mean =
            |g: &Grey| g.data.iter().map(|&p| f64::from(p)).sum::<f64>() / g.data.len() as f64;
        for (w, h) in [(100, 37), (301, 599), (1, 1)] {
            let r = g.resize(w, h);
            assert_eq!(r.data.len(), (w * h) as usize);
            assert!((mean(&r) - mean(&g)).abs() < 6.0, "{w}x{h}");
        }
    }
}
