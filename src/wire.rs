//! Bounds-checked big-endian reading and writing of binary formats.
//!
//! The reader never panics: every read checks the remaining length first and reports how
//! many bytes were missing. `finish()` rejects trailing bytes, so a decoder that ends with
//! it accepts exactly one encoding of each value.

use std::fmt;

/// Lower-case hex (key ids, salts, token hashes in logs and inspection output).
pub fn hex(bytes: &[u8]) -> String {
    use ct_codecs::Encoder;
    // The output is exactly twice the input; ct-codecs only fails on a too-small buffer.
    ct_codecs::Hex::encode_to_string(bytes).unwrap_or_default()
}

/// Why bytes could not be read.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireError {
    /// The input ended early: `needed` more bytes were required, only `remaining` were left.
    Truncated { needed: usize, remaining: usize },
    /// The input had `count` bytes after the last field.
    TrailingBytes { count: usize },
    /// A length or count does not fit this platform's address space.
    LengthOverflow,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated { needed, remaining } => {
                write!(
                    f,
                    "input is truncated: needed {needed} more bytes, {remaining} left"
                )
            }
            WireError::TrailingBytes { count } => {
                write!(f, "input has {count} unexpected trailing bytes")
            }
            WireError::LengthOverflow => f.write_str("a length field is too large"),
        }
    }
}

impl std::error::Error for WireError {}

/// A cursor over untrusted bytes.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// Takes exactly `len` bytes.
    pub fn take(&mut self, len: usize) -> Result<&'a [u8], WireError> {
        if len > self.rest.len() {
            return Err(WireError::Truncated {
                needed: len,
                remaining: self.rest.len(),
            });
        }
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(head)
    }

    /// Takes `count` records of `size` bytes each, checking the product for overflow
    /// and against the remaining input before anything is allocated.
    pub fn take_records(&mut self, count: usize, size: usize) -> Result<&'a [u8], WireError> {
        // Records too many to address cannot fit in any input: truncated on every target (a
        // 32-bit build must answer exactly as a 64-bit one does).
        let len = count.saturating_mul(size);
        self.take(len)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    pub fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A u32 count or length, converted without truncation.
    pub fn u32_len(&mut self) -> Result<usize, WireError> {
        usize::try_from(self.u32()?).map_err(|_| WireError::LengthOverflow)
    }

    /// A slice preceded by its length as a big-endian u32.
    pub fn slice_u32(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.u32_len()?;
        self.take(len)
    }

    /// Ends the read: any byte left over is an error.
    pub fn finish(self) -> Result<(), WireError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(WireError::TrailingBytes {
                count: self.rest.len(),
            })
        }
    }
}

/// Appends big-endian fields to a buffer.
#[derive(Clone, Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Writer::default()
    }

    pub fn with_capacity(capacity: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(capacity),
        }
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }

    /// A count or length as a big-endian u32; fails rather than truncating.
    pub fn u32_len(&mut self, len: usize) -> Result<(), WireError> {
        let len = u32::try_from(len).map_err(|_| WireError::LengthOverflow)?;
        self.u32(len);
        Ok(())
    }

    /// A slice preceded by its length as a big-endian u32.
    pub fn slice_u32(&mut self, v: &[u8]) -> Result<(), WireError> {
        self.u32_len(v.len())?;
        self.bytes(v);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_of_every_field() {
        let mut w = Writer::new();
        w.u8(0xab);
        w.u16(0x0102);
        w.u32(0x0304_0506);
        w.u64(0x0708_090a_0b0c_0d0e);
        w.bytes(&[1, 2, 3]);
        w.slice_u32(b"hello").unwrap();
        assert_eq!(
            &w.as_slice()[..15],
            &[0xab, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
        );
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u8().unwrap(), 0xab);
        assert_eq!(r.u16().unwrap(), 0x0102);
        assert_eq!(r.u32().unwrap(), 0x0304_0506);
        assert_eq!(r.u64().unwrap(), 0x0708_090a_0b0c_0d0e);
        assert_eq!(r.array::<3>().unwrap(), [1, 2, 3]);
        assert_eq!(r.slice_u32().unwrap(), b"hello");
        r.finish().unwrap();
    }

    #[test]
    fn every_prefix_is_truncated_never_a_panic() {
        let mut w = Writer::new();
        w.u64(7);
        w.slice_u32(&[9; 20]).unwrap();
        let bytes = w.into_bytes();
        for cut in 0..bytes.len() {
            let mut r = Reader::new(&bytes[..cut]);
            let res = r.u64().and_then(|_| r.slice_u32().map(|_| ()));
            assert!(matches!(res, Err(WireError::Truncated { .. })), "cut {cut}");
        }
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut r = Reader::new(&[0, 1, 2]);
        r.u16().unwrap();
        assert_eq!(r.finish(), Err(WireError::TrailingBytes { count: 1 }));
    }

    #[test]
    fn huge_lengths_fail_cleanly() {
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 1, 2]);
        assert_eq!(
            r.slice_u32(),
            Err(WireError::Truncated {
                needed: 0xffff_ffff,
                remaining: 2
            })
        );
        let mut r = Reader::new(&[1, 2]);
        assert_eq!(
            r.take_records(usize::MAX, 2),
            Err(WireError::Truncated {
                needed: usize::MAX,
                remaining: 2
            })
        );
    }
}
