//! Raw PBM (Netpbm "P4"): the plain bitmap interchange format ghostscript, Netpbm and ImageMagick write. Same
//! bit convention as ours (1 = black, rows padded to bytes, most significant bit leftmost), so pages are copied
//! as they are. A file may hold several images back to back.

use crate::{Error, page::stride};

/// One image of a PBM file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PbmPage {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::Pbm(msg.into())
}

struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn skip_space(&mut self) {
        while let Some(&b) = self.data.get(self.at) {
            if b == b'#' {
                while self
                    .data
                    .get(self.at)
                    .is_some_and(|&c| c != b'\n' && c != b'\r')
                {
                    self.at += 1;
                }
            } else if b.is_ascii_whitespace() {
                self.at += 1;
            } else {
                break;
            }
        }
    }

    fn number(&mut self, what: &str) -> Result<u32, Error> {
        self.skip_space();
        let start = self.at;
        while self.data.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        std::str::from_utf8(&self.data[start..self.at])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("the {what} at byte {start} is not a number")))
    }
}

/// Reads every image of a raw PBM file, refusing any with more than `max_pixels` pixels.
pub fn read(data: &[u8], max_pixels: u64) -> Result<Vec<PbmPage>, Error> {
    let mut c = Cursor { data, at: 0 };
    let mut pages = Vec::new();
    loop {
        c.skip_space();
        if c.at >= data.len() {
            break;
        }
        if data.get(c.at..c.at + 2) != Some(b"P4") {
            return Err(bad(format!(
                "no P4 magic at byte {} (only raw PBM is read)",
                c.at
            )));
        }
        c.at += 2;
        let width = c.number("width")?;
        let height = c.number("height")?;
        if width == 0 || height == 0 || width > crate::MAX_WIDTH {
            return Err(bad(format!(
                "image {} is {width}x{height} pixels",
                pages.len() + 1
            )));
        }
        if u64::from(width) * u64::from(height) > max_pixels {
            return Err(Error::TooLarge);
        }
        // Exactly one whitespace byte separates the header from the raster.
        if !data.get(c.at).is_some_and(u8::is_ascii_whitespace) {
            return Err(bad(format!(
                "no whitespace after the height at byte {}",
                c.at
            )));
        }
        c.at += 1;
        let len = stride(width) * height as usize;
        let raster = data.get(c.at..c.at + len).ok_or_else(|| {
            bad(format!(
                "image {} is truncated: {len} raster bytes needed",
                pages.len() + 1
            ))
        })?;
        let mut data = raster.to_vec();
        // Bits past the width are white, whatever the writer left there.
        if width % 8 != 0 {
            let keep = 0xFFu8 << (8 - width % 8);
            for row in data.chunks_mut(stride(width)) {
                if let Some(last) = row.last_mut() {
                    *last &= keep;
                }
            }
        }
        pages.push(PbmPage {
            width,
            height,
            data,
        });
        c.at += len;
    }
    if pages.is_empty() {
        return Err(bad("no image"));
    }
    Ok(pages)
}

/// Appends one image as raw PBM.
pub fn write(page: crate::PageRef<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("P4\n{} {}\n", page.width, page.height).as_bytes());
    let len = stride(page.width) * page.height as usize;
    out.extend_from_slice(&page.data[..len.min(page.data.len())]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_round_trip_and_bad_headers_are_named() {
        let mut out = Vec::new();
        write(
            crate::PageRef {
                width: 9,
                height: 2,
                data: &[0x80, 0x80, 0xff, 0x00],
            },
            &mut out,
        );
        write(
            crate::PageRef {
                width: 8,
                height: 1,
                data: &[0x0f],
            },
            &mut out,
        );
        let pages = read(&out, 1000).expect("our PBM reads back");
        assert_eq!(pages.len(), 2);
        assert_eq!(
            pages[0],
            PbmPage {
                width: 9,
                height: 2,
                data: vec![0x80, 0x80, 0xff, 0x00]
            }
        );
        assert_eq!(
            read(b"P4 # comment\n8 1\n\x0f", 1000).expect("a valid PBM")[0].data,
            vec![0x0f]
        );
        assert_eq!(
            read(b"P4\n3 1\n\xff", 1000).expect("a valid PBM")[0].data,
            vec![0xe0],
            "padding is cleared"
        );
        assert!(
            read(b"P1\n1 1\n1", 1000)
                .expect_err("a malformed PBM")
                .to_string()
                .contains("raw PBM")
        );
        assert!(
            read(b"P4\n8 2\n\x00", 1000)
                .expect_err("a malformed PBM")
                .to_string()
                .contains("truncated")
        );
        assert!(
            read(b"P4\nx 2\n", 1000)
                .expect_err("a malformed PBM")
                .to_string()
                .contains("width")
        );
        assert_eq!(
            read(b"P4\n100 100\n", 1000).expect_err("too large"),
            Error::TooLarge
        );
        assert!(read(b"", 1000).is_err());
    }
}
