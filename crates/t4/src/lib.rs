//! ITU-T T.4 and T.6 fax image coding, and TIFF Class F files.
//!
//! - [`encode`] / [`decode`]: whole pages in MH (T.4 one-dimensional), MR (T.4 two-dimensional, any K)
//!   and MMR (T.6), with EOL framing, fill for byte-aligned EOLs, a minimum coded line length (the
//!   minimum scan-line time of non-ECM transmission), RTC and EOFB. The decoder behaves as a fax receiver:
//!   a corrupt line is replaced by the line above, counted, and decoding resumes at the next EOL; the
//!   result carries the bad-line count and the longest run of bad lines for T.30's copy-quality check.
//! - [`tiff`]: reading any bilevel TIFF libtiff writes (strips, both fill orders, both byte orders;
//!   uncompressed, PackBits, CCITT RLE, G3 and G4) and writing multi-page TIFF Class F.
//! - [`pbm`]: raw PBM, the plain bitmap format the reference tools exchange.
//!
//! Pages use the shared bitmap convention: 1 bit per pixel, rows padded to whole bytes, the most
//! significant bit is the leftmost pixel, 1 is black.
//!
//! Pure: no file system, no clock (the TIFF writer writes to any `io::Write` it is given). Untrusted input never panics; sizes are bounded before allocation.

pub mod bits;
mod codes;
mod mr;
mod page;
pub mod pbm;
mod runs;
pub mod tiff;

pub use page::{
    Coding, DecodeOptions, DecodeStats, Decoded, EncodeOptions, PageEnd, PageRef, decode,
    decode_into, encode, stride,
};

/// The widest line accepted (T.4 lines are 1728, 2048 or 2432 pixels at 8 pels/mm; TIFF may be wider).
pub const MAX_WIDTH: u32 = 65_535;
/// The most lines a decoder produces for one page unless told fewer.
pub const MAX_HEIGHT: u32 = 65_535;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("line width {0} is outside 1 to 65535 pixels")]
    BadWidth(u32),
    #[error("the bitmap holds {got} bytes; the page needs {need}")]
    ShortBitmap { need: usize, got: usize },
    #[error("the page is too large")]
    TooLarge,
    #[error("no line could be decoded")]
    NoLines,
    #[error("TIFF: {0}")]
    Tiff(String),
    #[error("a page of {width} x {height} pixels is over the limit of {limit}")]
    PageTooLarge { width: u64, height: u64, limit: u64 },
    #[error("more than {limit} pages")]
    TooManyPages { limit: usize },
    #[error("writing: {0}")]
    Io(String),
    #[error("PBM: {0}")]
    Pbm(String),
    #[error("TIFF: {0} is not supported")]
    Unsupported(String),
}
