//! The binary header of a published entry. Byte-identical across versions: workers of
//! different builds may share one zone.
//!
//! `RGS1` | sequence (u64 BE) | fetch time (u64 BE) | ETag length (u16 BE) | ETag | body.
//!
//! A body larger than [`CHUNK_BYTES`] is split over several keys, each piece under this same
//! header, and the version entry's (otherwise empty) body is then a [`Chunked`] table.

const MAGIC: &[u8; 4] = b"RGS1";
/// MAGIC, sequence, fetch time, ETag length.
const HEADER_LEN: usize = 4 + 8 + 8 + 2;
/// ETags longer than this are published as empty (and never sent back).
pub const MAX_ETAG: usize = 256;

/// The largest body published under one key. Some proxy-wasm hosts refuse shared-data values
/// over 64 KiB: a piece, its header and the longest ETag stay within 64 KiB.
pub const CHUNK_BYTES: usize = 63 * 1024;

/// The largest body published under one key on Kong. Its `shm_kv` zone evicts entries until a
/// new value fits and traps when even the emptied zone cannot hold it (ngx_wasm_module
/// src/common/shm/ngx_wa_shm_kv.c `ngx_wa_shm_kv_set_locked` -> NGX_ERROR -> trap in
/// src/common/proxy_wasm/ngx_proxy_wasm_host.c), and the smallest zone it accepts is three
/// pages (`NGX_WA_SHM_MIN_SIZE`, src/common/shm/ngx_wa_shm.h), of which the slab pool's own
/// structures and the store's take one or more. A piece, its header, the longest ETag, the
/// key and the store's node (about 100 bytes) stay within one 4 KiB page, so no zone Kong
/// accepts is too small for a value the filter writes: a small zone costs origin fetches,
/// never a trapped worker.
pub const KONG_CHUNK_BYTES: usize = 3 * 1024;

/// The version entry's body for data split over `count` pieces: count (u16 BE), total length
/// (u32 BE) and the first 16 bytes of the body's SHA-256, so a reader that put together pieces
/// of two publications (two writers racing with the same sequence number) knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunked {
    pub count: u16,
    len: u32,
    digest: [u8; 16],
}

fn digest(body: &[u8]) -> [u8; 16] {
    let full = hmac_sha256::Hash::hash(body);
    full.first_chunk().copied().unwrap_or_default()
}

impl Chunked {
    const LEN: usize = 2 + 4 + 16;

    /// The table for `body` cut into pieces of `piece_bytes`, `None` when it fits one key (or
    /// is too large to split: over 65,535 pieces, beyond any snapshot limit at 3 KiB a piece).
    pub fn of(body: &[u8], piece_bytes: usize) -> Option<Chunked> {
        if body.len() <= piece_bytes || piece_bytes == 0 {
            return None;
        }
        Some(Chunked {
            count: u16::try_from(body.len().div_ceil(piece_bytes)).ok()?,
            len: u32::try_from(body.len()).ok()?,
            digest: digest(body),
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(&self.len.to_be_bytes());
        out.extend_from_slice(&self.digest);
        out
    }

    /// `None` for anything but an exact table of at least two pieces.
    pub fn decode(bytes: &[u8]) -> Option<Chunked> {
        if bytes.len() != Self::LEN {
            return None;
        }
        let count = u16::from_be_bytes(bytes.get(0..2)?.try_into().ok()?);
        let len = u32::from_be_bytes(bytes.get(2..6)?.try_into().ok()?);
        let digest: [u8; 16] = bytes.get(6..)?.try_into().ok()?;
        (count >= 2).then_some(Chunked { count, len, digest })
    }

    /// Whether `body`, put together from the pieces, is the body this table describes.
    pub fn matches(&self, body: &[u8]) -> bool {
        usize::try_from(self.len).is_ok_and(|len| len == body.len()) && digest(body) == self.digest
    }
}

/// One resource's published header and body.
#[derive(Debug, PartialEq, Eq)]
pub struct Published<'a> {
    pub seq: u64,
    pub fetched_at: u64,
    pub etag: &'a str,
    pub body: &'a [u8],
}

pub fn encode(seq: u64, fetched_at: u64, etag: &str, body: &[u8]) -> Vec<u8> {
    let etag = if etag.len() <= MAX_ETAG { etag } else { "" };
    let mut out = Vec::with_capacity(
        HEADER_LEN
            .saturating_add(etag.len())
            .saturating_add(body.len()),
    );
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&fetched_at.to_be_bytes());
    out.extend_from_slice(&u16::try_from(etag.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(etag.as_bytes());
    out.extend_from_slice(body);
    out
}

fn be_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let raw: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_be_bytes(raw))
}

/// `None` for anything that is not a complete header (wrong magic, truncated, ETag not UTF-8).
pub fn decode(bytes: &[u8]) -> Option<Published<'_>> {
    if bytes.get(..4)? != MAGIC {
        return None;
    }
    let seq = be_u64(bytes, 4)?;
    let fetched_at = be_u64(bytes, 12)?;
    let raw: [u8; 2] = bytes.get(20..22)?.try_into().ok()?;
    let etag_end = HEADER_LEN.checked_add(usize::from(u16::from_be_bytes(raw)))?;
    let etag = std::str::from_utf8(bytes.get(HEADER_LEN..etag_end)?).ok()?;
    Some(Published {
        seq,
        fetched_at,
        etag,
        body: bytes.get(etag_end..)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_byte_identical_to_the_shipped_one() {
        let bytes = encode(0x0102, 0x0a0b, "e1", b"body");
        let mut want = b"RGS1".to_vec();
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x01, 0x02]);
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x0a, 0x0b]);
        want.extend_from_slice(&[0, 2]);
        want.extend_from_slice(b"e1body");
        assert_eq!(bytes, want);
        let back = decode(&bytes).unwrap();
        assert_eq!(
            back,
            Published {
                seq: 0x0102,
                fetched_at: 0x0a0b,
                etag: "e1",
                body: b"body"
            }
        );
    }

    #[test]
    fn every_truncation_of_a_header_is_refused() {
        let bytes = encode(7, 9, "etag", b"");
        for len in 0..bytes.len() {
            assert_eq!(decode(bytes.get(..len).unwrap()), None, "{len}");
        }
        assert!(decode(&bytes).is_some());
    }

    #[test]
    fn corrupt_headers_are_refused() {
        let mut bad_magic = encode(1, 1, "", b"x");
        bad_magic[3] = b'2';
        assert_eq!(decode(&bad_magic), None);
        let mut bad_etag = encode(1, 1, "ab", b"");
        bad_etag[22] = 0xff;
        assert_eq!(decode(&bad_etag), None);
        let mut long_etag_len = encode(1, 1, "ab", b"");
        long_etag_len[21] = 200;
        assert_eq!(decode(&long_etag_len), None);
        assert_eq!(decode(b"garbage"), None);
    }

    #[test]
    fn a_chunk_table_round_trips_and_refuses_anything_else() {
        assert_eq!(Chunked::of(&vec![1u8; CHUNK_BYTES], CHUNK_BYTES), None);
        let body = vec![7u8; 2 * CHUNK_BYTES + 1];
        let table = Chunked::of(&body, CHUNK_BYTES).unwrap();
        assert_eq!(table.count, 3);
        let bytes = table.encode();
        assert_eq!(Chunked::decode(&bytes), Some(table));
        assert!(table.matches(&body));
        let mut other = body.clone();
        other[CHUNK_BYTES] = 8;
        assert!(!table.matches(&other));
        assert!(!table.matches(&body[1..]));
        for len in 0..bytes.len() {
            assert_eq!(Chunked::decode(&bytes[..len]), None);
        }
        let mut one_piece = bytes.clone();
        one_piece[0..2].copy_from_slice(&1u16.to_be_bytes());
        assert_eq!(Chunked::decode(&one_piece), None);
        assert_eq!(Chunked::decode(&[bytes.clone(), vec![0]].concat()), None);
    }

    #[test]
    fn a_piece_with_its_header_and_the_longest_etag_fits_64_kib() {
        let etag = "x".repeat(MAX_ETAG);
        assert!(encode(u64::MAX, u64::MAX, &etag, &vec![0; CHUNK_BYTES]).len() <= 64 * 1024);
    }

    #[test]
    fn a_kong_piece_with_its_header_key_and_node_fits_one_page() {
        // Key: the zone name (validated to at most 64 bytes), the kind, the source id and the
        // piece number; the store's node: an rbtree node, a queue link, two strings, the CAS.
        let etag = "x".repeat(MAX_ETAG);
        let value = encode(u64::MAX, u64::MAX, &etag, &vec![0; KONG_CHUNK_BYTES]).len();
        let key = 64 + "/snapshot/01234567/data/65535".len();
        assert!(value + key + 128 <= 4096, "{value} + {key}");
        // The largest snapshot accepted still has a table.
        let largest = vec![0u8; 16 << 20];
        assert!(Chunked::of(&largest, KONG_CHUNK_BYTES).is_some());
    }

    #[test]
    fn an_overlong_etag_is_published_empty() {
        let etag = "x".repeat(MAX_ETAG + 1);
        let bytes = encode(1, 2, &etag, b"b");
        assert_eq!(
            decode(&bytes).map(|p| (p.etag, p.body)),
            Some(("", &b"b"[..]))
        );
        let etag = "x".repeat(MAX_ETAG);
        assert_eq!(
            decode(&encode(1, 2, &etag, b"")).map(|p| p.etag.len()),
            Some(MAX_ETAG)
        );
    }
}
