//! Raster pictures: PNG, JPEG and GIF through `image`, grey and colour TIFF through `tiff`.

use std::io::Cursor;

use crate::error::{Error, Format};
use crate::geometry::{Halftone, PageSpec, fit};
use crate::halftone::Grey;
use crate::page::Page;
use crate::{Limits, SharedBytes};

/// One decoded picture with its physical resolution when the file states one.
#[derive(Debug, Clone)]
pub(crate) struct Picture {
    pub grey: Grey,
    /// (x, y) dots per inch; `None` means square pixels of unknown size.
    pub dpi: Option<(f64, f64)>,
}

impl Picture {
    /// Scales the picture to fit the paper (up or down, keeping its physical aspect
    /// ratio on the possibly non-square fax grid), centred at the top, then halftones it.
    pub fn render(&self, spec: &PageSpec) -> Page {
        let (w, h) = (f64::from(self.grey.width), f64::from(self.grey.height));
        let (xd, yd) = self.dpi.unwrap_or((1.0, 1.0));
        let mut canvas = Grey::white(spec.width(), spec.height());
        let mut halftone = spec.halftone;
        if let Some(p) = fit(spec, w / xd, h / yd, f64::INFINITY) {
            let scaled = self.grey.resize(p.width, p.height);
            // Decide on the picture alone: the white margins would make any page bimodal.
            if halftone == Halftone::Auto {
                halftone = if scaled.is_bimodal() {
                    Halftone::Threshold
                } else {
                    Halftone::Dither
                };
            }
            canvas.paste(&scaled, p.x, 0);
        }
        canvas.to_page(halftone, spec.x_dpi(), spec.y_dpi())
    }
}

fn check_pixels(width: u64, height: u64, format: Format, limits: &Limits) -> Result<(), Error> {
    if width == 0 || height == 0 {
        return Err(Error::corrupt(format, "the image has no pixels"));
    }
    if width.saturating_mul(height) > limits.max_image_pixels {
        return Err(Error::ImageTooLarge {
            width,
            height,
            limit: limits.max_image_pixels,
        });
    }
    Ok(())
}

/// Decodes a PNG, JPEG or GIF (first frame) to grey, compositing transparency on white.
pub(crate) fn decode_image(
    bytes: &[u8],
    format: Format,
    limits: &Limits,
) -> Result<Picture, Error> {
    use image::ImageDecoder;
    let fmt = match format {
        Format::Png => image::ImageFormat::Png,
        Format::Jpeg => image::ImageFormat::Jpeg,
        _ => image::ImageFormat::Gif,
    };
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), fmt);
    let mut il = image::Limits::default();
    il.max_alloc = Some(limits.max_image_pixels.saturating_mul(8));
    reader.limits(il);
    let decoder = reader.into_decoder().map_err(|e| image_error(format, e))?;
    let (w, h) = decoder.dimensions();
    check_pixels(u64::from(w), u64::from(h), format, limits)?;
    let img = image::DynamicImage::from_decoder(decoder).map_err(|e| image_error(format, e))?;
    let data = if img.color().has_alpha() {
        img.to_luma_alpha8()
            .pixels()
            .map(|p| {
                let [l, a] = p.0;
                let (l, a) = (u32::from(l), u32::from(a));
                ((l * a + 255 * (255 - a) + 127) / 255) as u8
            })
            .collect()
    } else {
        // No alpha: convert in place of the decoded buffer rather than via a copy with alpha.
        img.into_luma8().into_raw()
    };
    Ok(Picture {
        grey: Grey {
            width: w,
            height: h,
            data,
        },
        dpi: None,
    })
}

fn image_error(format: Format, e: image::ImageError) -> Error {
    match e {
        image::ImageError::Limits(l) => Error::unsupported(format, format!("over a limit: {l}")),
        image::ImageError::Unsupported(u) => Error::unsupported(format, u),
        other => Error::corrupt(format, other),
    }
}

/// A multi-page TIFF; pages are decoded when rendered.
pub(crate) struct Tiff {
    bytes: SharedBytes,
    pages: usize,
}

/// TIFF `Compression` values that are fax codings (TIFF 6.0 §11; 2 is Modified Huffman RLE).
const CCITT: [u32; 3] = [2, 3, 4];

impl Tiff {
    /// Walks every directory, checking sizes and codings before anything is decoded.
    pub fn open(bytes: SharedBytes, limits: &Limits) -> Result<Tiff, Error> {
        let mut dec = decoder(&bytes, limits)?;
        let mut pages = 0usize;
        loop {
            pages += 1;
            if pages > limits.max_pages {
                return Err(Error::TooManyPages {
                    pages,
                    limit: limits.max_pages,
                });
            }
            check_directory(&mut dec, limits)?;
            if !dec.more_images() {
                break;
            }
            dec.next_image().map_err(tiff_error)?;
        }
        Ok(Tiff { bytes, pages })
    }

    pub fn page_count(&self) -> usize {
        self.pages
    }

    pub fn picture(&self, index: usize, limits: &Limits) -> Result<Picture, Error> {
        let mut dec = decoder(&self.bytes, limits)?;
        dec.seek_to_image(index).map_err(tiff_error)?;
        let (w, h) = check_directory(&mut dec, limits)?;
        let color = dec.colortype().map_err(tiff_error)?;
        let dpi = resolution(&mut dec);
        let raw = dec.read_image().map_err(tiff_error)?;
        let grey = to_grey(raw, color, w, h)?;
        Ok(Picture { grey, dpi })
    }
}

fn decoder<'a>(
    bytes: &'a [u8],
    limits: &Limits,
) -> Result<tiff::decoder::Decoder<Cursor<&'a [u8]>>, Error> {
    let mut tl = tiff::decoder::Limits::default();
    let budget = usize::try_from(limits.max_image_pixels.saturating_mul(8)).unwrap_or(usize::MAX);
    tl.decoding_buffer_size = budget;
    tl.intermediate_buffer_size = budget;
    Ok(tiff::decoder::Decoder::new(Cursor::new(bytes))
        .map_err(tiff_error)?
        .with_limits(tl))
}

fn check_directory(
    dec: &mut tiff::decoder::Decoder<Cursor<&[u8]>>,
    limits: &Limits,
) -> Result<(u32, u32), Error> {
    let (w, h) = dec.dimensions().map_err(tiff_error)?;
    check_pixels(u64::from(w), u64::from(h), Format::Tiff, limits)?;
    let compression = dec
        .find_tag_unsigned::<u32>(tiff::tags::Tag::Compression)
        .map_err(tiff_error)?
        .unwrap_or(1);
    // Fax codings only exist for 1-bit pages, which the t4 reader takes; here they mean a broken file.
    if CCITT.contains(&compression) {
        return Err(Error::unsupported(
            Format::Tiff,
            format!("CCITT fax coding (Compression {compression}) on a page that is not 1-bit"),
        ));
    }
    Ok((w, h))
}

fn resolution(dec: &mut tiff::decoder::Decoder<Cursor<&[u8]>>) -> Option<(f64, f64)> {
    use tiff::tags::Tag;
    let mut number = |tag| {
        use tiff::decoder::ifd::Value as V;
        match dec.find_tag(tag).ok()?? {
            V::Rational(n, d) => Some(f64::from(n) / f64::from(d)),
            V::Double(v) => Some(v),
            V::Float(v) => Some(f64::from(v)),
            V::Short(v) => Some(f64::from(v)),
            V::Unsigned(v) => Some(f64::from(v)),
            _ => None,
        }
    };
    let x = number(Tag::XResolution)?;
    let y = number(Tag::YResolution)?;
    let unit = dec
        .find_tag_unsigned::<u16>(Tag::ResolutionUnit)
        .ok()
        .flatten()
        .unwrap_or(2);
    // ResolutionUnit 3 is per centimetre; 1 (none) still gives the aspect ratio.
    let k = if unit == 3 { 2.54 } else { 1.0 };
    (x.is_finite() && y.is_finite() && x > 0.0 && y > 0.0).then_some((x * k, y * k))
}

fn tiff_error(e: tiff::TiffError) -> Error {
    match e {
        tiff::TiffError::UnsupportedError(u) => Error::unsupported(Format::Tiff, u),
        tiff::TiffError::LimitsExceeded => Error::unsupported(Format::Tiff, "over a size limit"),
        other => Error::corrupt(Format::Tiff, other),
    }
}

/// Converts decoded TIFF samples (already BlackIsZero: the decoder inverts WhiteIsZero) to grey.
fn to_grey(
    raw: tiff::decoder::DecodingResult,
    color: tiff::ColorType,
    w: u32,
    h: u32,
) -> Result<Grey, Error> {
    use tiff::ColorType as C;
    use tiff::decoder::DecodingResult as D;
    let (w_us, h_us) = (w as usize, h as usize);
    let unsupported = || Error::unsupported(Format::Tiff, format!("colour type {color:?}"));
    let short = || Error::corrupt(Format::Tiff, "image data shorter than its dimensions");
    // Samples per pixel and how the first samples map to grey.
    let (spp, model) = match color {
        C::Gray(_) => (1, Model::Grey),
        C::GrayA(_) => (2, Model::GreyAlpha),
        C::RGB(_) => (3, Model::Rgb),
        C::RGBA(_) => (4, Model::RgbAlpha),
        C::CMYK(_) => (4, Model::Cmyk),
        _ => return Err(unsupported()),
    };
    let samples: Vec<u8> = match (raw, color) {
        (D::U8(v), C::Gray(bits @ (1 | 2 | 4))) => {
            // Packed rows, each padded to a byte.
            let stride = (w_us * usize::from(bits)).div_ceil(8);
            let max = (1u16 << bits) - 1;
            let mut out = Vec::with_capacity(w_us * h_us);
            for y in 0..h_us {
                let row = v.get(y * stride..(y + 1) * stride).ok_or_else(short)?;
                for x in 0..w_us {
                    let bit = x * usize::from(bits);
                    let byte = row.get(bit / 8).copied().unwrap_or(0);
                    let val = (u16::from(byte) >> (8 - usize::from(bits) - bit % 8)) & max;
                    out.push((val * 255 / max) as u8);
                }
            }
            out
        }
        (D::U8(v), _) if color.bit_depth() == 8 => v,
        (D::U16(v), _) => v.into_iter().map(|s| (s >> 8) as u8).collect(),
        _ => return Err(unsupported()),
    };
    let need = w_us * h_us * spp;
    let samples = samples.get(..need).ok_or_else(short)?;
    let data = samples.chunks_exact(spp).map(|p| model.grey(p)).collect();
    Ok(Grey {
        width: w,
        height: h,
        data,
    })
}

#[derive(Clone, Copy)]
enum Model {
    Grey,
    GreyAlpha,
    Rgb,
    RgbAlpha,
    Cmyk,
}

impl Model {
    fn grey(self, p: &[u8]) -> u8 {
        let at = |i: usize| u32::from(p.get(i).copied().unwrap_or(0));
        let luma = |r: u32, g: u32, b: u32| (r * 77 + g * 150 + b * 29) >> 8;
        let over_white = |v: u32, a: u32| (v * a + 255 * (255 - a) + 127) / 255;
        let v = match self {
            Model::Grey => at(0),
            Model::GreyAlpha => over_white(at(0), at(1)),
            Model::Rgb => luma(at(0), at(1), at(2)),
            Model::RgbAlpha => over_white(luma(at(0), at(1), at(2)), at(3)),
            Model::Cmyk => {
                let k = 255 - at(3);
                luma(
                    (255 - at(0)) * k / 255,
                    (255 - at(1)) * k / 255,
                    (255 - at(2)) * k / 255,
                )
            }
        };
        v.min(255) as u8
    }
}
