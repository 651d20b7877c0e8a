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

/// What [`decode_image`] allocates for a picture, from its header: the decoded buffer in the colour type
/// it is delivered in, the grey (and grey-and-alpha) copies, and what the codec keeps meanwhile (a
/// progressive JPEG keeps every coefficient of every component; GIF frames may be composed in a second
/// buffer). A picture over the pixel limit costs nothing: it is refused before decoding.
pub(crate) fn decode_cost(bytes: &[u8], format: Format, limits: &Limits) -> u64 {
    use image::ImageDecoder;
    let fmt = match format {
        Format::Png => image::ImageFormat::Png,
        Format::Jpeg => image::ImageFormat::Jpeg,
        _ => image::ImageFormat::Gif,
    };
    let Ok(decoder) = image::ImageReader::with_format(Cursor::new(bytes), fmt).into_decoder()
    else {
        return 0;
    };
    let (w, h) = decoder.dimensions();
    let pixels = u64::from(w) * u64::from(h);
    if pixels > limits.max_image_pixels {
        return 0;
    }
    let decoded = decoder.total_bytes();
    let grey = match decoder.color_type() {
        image::ColorType::L8 => 0,
        c if c.has_alpha() => 3 * pixels,
        _ => pixels,
    };
    let codec = match format {
        Format::Jpeg => match jpeg_frame(bytes) {
            Some(frame) if frame.progressive => 2 * frame.samples,
            Some(_) => 0,
            // No frame header found before the data: assume the worst, four full components.
            None => 8 * pixels,
        },
        Format::Gif => decoded,
        _ => 0,
    };
    decoded + grey + codec
}

/// What a JPEG's frame header (ITU-T T.81 §B.2.2) says about decoding it.
struct JpegFrame {
    /// SOF2, SOF6, SOF10 or SOF14: every coefficient is kept until the last scan.
    progressive: bool,
    /// Samples of all components, each padded to whole 8 × 8 blocks.
    samples: u64,
}

/// Walks the markers (T.81 §B.1.1.4) to the first frame header.
fn jpeg_frame(bytes: &[u8]) -> Option<JpegFrame> {
    let mut i = 2;
    loop {
        while bytes.get(i) == Some(&0xFF) && bytes.get(i + 1) == Some(&0xFF) {
            i += 1;
        }
        if bytes.get(i) != Some(&0xFF) {
            return None;
        }
        let marker = *bytes.get(i + 1)?;
        i += 2;
        match marker {
            0x01 | 0xD0..=0xD8 => continue,
            0xD9 | 0xDA => return None,
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([*bytes.get(i)?, *bytes.get(i + 1)?]));
        let data = bytes.get(i + 2..i + len.max(2))?;
        if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            let height = u64::from(u16::from_be_bytes([*data.get(1)?, *data.get(2)?]));
            let width = u64::from(u16::from_be_bytes([*data.get(3)?, *data.get(4)?]));
            let n = usize::from(*data.get(5)?);
            let factors: Vec<(u64, u64)> = (0..n)
                .map(|c| {
                    data.get(7 + 3 * c)
                        .map(|hv| (u64::from(hv >> 4), u64::from(hv & 15)))
                })
                .collect::<Option<_>>()?;
            let h_max = factors.iter().map(|f| f.0).max()?.max(1);
            let v_max = factors.iter().map(|f| f.1).max()?.max(1);
            let blocks = |size: u64, f: u64, max: u64| (size * f).div_ceil(max).div_ceil(8) * 8;
            let samples = factors
                .iter()
                .map(|&(hf, vf)| blocks(width, hf, h_max) * blocks(height, vf, v_max))
                .sum();
            return Some(JpegFrame {
                progressive: matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE),
                samples,
            });
        }
        i += len;
    }
}

/// What decoding the largest page of a grey or colour TIFF allocates (the samples and the grey page); the
/// most the limits allow when the directories cannot be read.
pub(crate) fn tiff_cost(bytes: &[u8], limits: &Limits) -> u64 {
    let most = limits.max_image_pixels * 9;
    let Ok(mut dec) = decoder(bytes, limits) else {
        return most;
    };
    let mut cost = 0u64;
    for _ in 0..limits.max_pages {
        let (Ok((w, h)), Ok(color)) = (dec.dimensions(), dec.colortype()) else {
            return most;
        };
        let pixels = u64::from(w) * u64::from(h);
        let spp = u64::from(color.num_samples());
        let bits = u64::from(color.bit_depth());
        let raw = (pixels * spp * bits).div_ceil(8);
        cost = cost.max(raw + pixels);
        if !dec.more_images() {
            return cost.min(most);
        }
        if dec.next_image().is_err() {
            return most;
        }
    }
    most
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
    let need = w_us * h_us * spp;
    // Grey straight from the decoded samples: no copy of a (possibly 16-bit) picture besides the grey one.
    let data: Vec<u8> = match (raw, color) {
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
        (D::U8(v), _) if color.bit_depth() == 8 => v
            .get(..need)
            .ok_or_else(short)?
            .chunks_exact(spp)
            .map(|p| model.grey(p))
            .collect(),
        (D::U16(v), _) => v
            .get(..need)
            .ok_or_else(short)?
            .chunks_exact(spp)
            .map(|p| {
                let mut high = [0u8; 4];
                for (h, s) in high.iter_mut().zip(p) {
                    *h = (s >> 8) as u8;
                }
                model.grey(&high[..spp])
            })
            .collect(),
        _ => return Err(unsupported()),
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    /// SOI, an APP0 segment, then a frame header: 16 × 16, Y at 2 × 2, Cb and Cr at 1 × 1.
    fn jpeg_head(sof: u8) -> Vec<u8> {
        let mut b = vec![
            0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0, 0xFF, 0xFF, sof, 0, 17, 8, 0, 16, 0, 16, 3,
        ];
        b.extend_from_slice(&[1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        b
    }

    #[test]
    fn sixteen_bit_samples_give_the_grey_of_their_high_bytes() {
        use tiff::ColorType as C;
        use tiff::decoder::DecodingResult as D;
        let px8: Vec<u8> = vec![10, 200, 30, 255, 250, 250, 250, 0];
        let px16: Vec<u16> = px8.iter().map(|v| (u16::from(*v) << 8) | 0x7F).collect();
        let a = to_grey(D::U8(px8), C::RGBA(8), 2, 1).expect("8-bit");
        let b = to_grey(D::U16(px16), C::RGBA(16), 2, 1).expect("16-bit");
        assert_eq!(a.data, b.data);
        assert_eq!(b.data[1], 255, "a transparent pixel is paper white");
        assert!(
            to_grey(D::U16(vec![1; 7]), C::RGBA(16), 2, 1).is_err(),
            "short data"
        );
    }

    #[test]
    fn jpeg_frames_say_whether_every_coefficient_is_kept() {
        let progressive = jpeg_frame(&jpeg_head(0xC2)).expect("frame");
        // Y: 16 × 16 samples; Cb, Cr: 8 × 8 each.
        assert_eq!((progressive.progressive, progressive.samples), (true, 384));
        assert!(!jpeg_frame(&jpeg_head(0xC0)).expect("frame").progressive);
        assert!(jpeg_frame(&jpeg_head(0xC4)).is_none(), "DHT is not a frame");
        assert!(jpeg_frame(&[0xFF, 0xD8, 0xFF, 0xDA, 0, 2]).is_none());
        let mut cut = jpeg_head(0xC2);
        cut.truncate(20);
        assert!(jpeg_frame(&cut).is_none());
    }
}
