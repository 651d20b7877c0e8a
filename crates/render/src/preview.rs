//! PNG previews and thumbnails of pages.

use crate::error::Error;
use crate::page::Page;

/// Encodes `page` as an 8-bit greyscale PNG no larger than `max_w` × `max_h`, with the
/// page's physical aspect ratio (fax pixels are often twice as tall as wide). Each
/// preview pixel is the average of the page pixels it covers, so text stays legible.
pub fn png(page: &Page, max_w: u32, max_h: u32) -> Result<Vec<u8>, Error> {
    let (w, h) = preview_size(page, max_w, max_h);
    let (pw, ph) = (u64::from(page.width), u64::from(page.height));
    let mut grey = vec![255u8; w as usize * h as usize];
    for (oy, row) in grey.chunks_exact_mut(w as usize).enumerate() {
        let y0 = oy as u64 * ph / u64::from(h);
        let y1 = ((oy as u64 + 1) * ph / u64::from(h)).max(y0 + 1);
        for (ox, px) in row.iter_mut().enumerate() {
            let x0 = ox as u64 * pw / u64::from(w);
            let x1 = ((ox as u64 + 1) * pw / u64::from(w)).max(x0 + 1);
            let mut black = 0u64;
            for y in y0..y1 {
                for x in x0..x1 {
                    black += u64::from(page.get(x as u32, y as u32));
                }
            }
            let n = (y1 - y0) * (x1 - x0);
            *px = (255 - black * 255 / n) as u8;
        }
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc
        .write_header()
        .map_err(|e| Error::PngEncode(e.to_string()))?;
    writer
        .write_image_data(&grey)
        .map_err(|e| Error::PngEncode(e.to_string()))?;
    writer
        .finish()
        .map_err(|e| Error::PngEncode(e.to_string()))?;
    Ok(out)
}

/// The preview's pixel size: the page's physical aspect ratio fitted into the box, never
/// larger than the page itself, at least 1 × 1.
pub fn preview_size(page: &Page, max_w: u32, max_h: u32) -> (u32, u32) {
    let phys_w = f64::from(page.width.max(1)) / f64::from(page.x_dpi.max(1));
    let phys_h = f64::from(page.height.max(1)) / f64::from(page.y_dpi.max(1));
    // Square preview pixels at the page's finer resolution, then shrink to the box.
    let dpi = f64::from(page.x_dpi.max(page.y_dpi).max(1));
    let (fw, fh) = (phys_w * dpi, phys_h * dpi);
    let s = (f64::from(max_w.max(1)) / fw)
        .min(f64::from(max_h.max(1)) / fh)
        .min(1.0);
    (
        ((fw * s).round() as u32).max(1),
        ((fh * s).round() as u32).max(1),
    )
}
