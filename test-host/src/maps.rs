//! Header maps and their proxy-wasm serialization.
//!
//! Wire format (little endian): `u32 count`, then `count` pairs of `u32 key_len, u32 value_len`, then each
//! key and value followed by a NUL byte. Keys are lower-cased on insertion, as Envoy's `LowerCaseString` does.

/// An ordered multi-map of header names to values, as bytes (values need not be UTF-8).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderMap {
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Largest number of pairs accepted from a guest-serialized map.
const MAX_PAIRS: usize = 8192;

impl HeaderMap {
    /// An empty map.
    pub fn new() -> HeaderMap {
        HeaderMap::default()
    }

    /// Builds a map from string pairs (names are lower-cased).
    pub fn from_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.add(k.as_ref(), v.as_ref());
        }
        map
    }

    /// Number of entries (a repeated name counts once per value).
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// All entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))
    }

    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let key = lower(name.as_bytes());
        self.pairs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_slice())
    }

    /// The first value of `name` as text, if it is UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every value of `name`, in order.
    pub fn get_all(&self, name: &str) -> Vec<&[u8]> {
        let key = lower(name.as_bytes());
        self.pairs
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    /// Appends a value (keeps existing ones), like `proxy_add_header_map_value`.
    pub fn add(&mut self, name: &[u8], value: &[u8]) {
        self.pairs.push((lower(name), value.to_vec()));
    }

    /// Sets `name` to exactly one value, like `proxy_replace_header_map_value`.
    pub fn replace(&mut self, name: &[u8], value: &[u8]) {
        let key = lower(name);
        match self.pairs.iter().position(|(k, _)| *k == key) {
            Some(first) => {
                if let Some(slot) = self.pairs.get_mut(first) {
                    slot.1 = value.to_vec();
                }
                let mut index = 0usize;
                self.pairs.retain(|(k, _)| {
                    let keep = index <= first || *k != key;
                    index = index.saturating_add(1);
                    keep
                });
            }
            None => self.pairs.push((key, value.to_vec())),
        }
    }

    /// Removes every value of `name`.
    pub fn remove(&mut self, name: &[u8]) {
        let key = lower(name);
        self.pairs.retain(|(k, _)| *k != key);
    }

    /// Serialized size in bytes (what `proxy_get_header_map_size` reports).
    pub fn serialized_size(&self) -> usize {
        self.pairs.iter().fold(4usize, |acc, (k, v)| {
            acc.saturating_add(8)
                .saturating_add(k.len())
                .saturating_add(v.len())
                .saturating_add(2)
        })
    }

    /// Serializes in the proxy-wasm wire format. Sizes over `u32::MAX` are impossible for header data
    /// held in memory here and are clamped, which the guest would then reject.
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.serialized_size());
        out.extend_from_slice(&len_u32(self.pairs.len()).to_le_bytes());
        for (k, v) in &self.pairs {
            out.extend_from_slice(&len_u32(k.len()).to_le_bytes());
            out.extend_from_slice(&len_u32(v.len()).to_le_bytes());
        }
        for (k, v) in &self.pairs {
            out.extend_from_slice(k);
            out.push(0);
            out.extend_from_slice(v);
            out.push(0);
        }
        out
    }

    /// Parses the wire format with bounds checks; `None` for anything malformed (truncated, trailing
    /// bytes, missing NUL terminators, absurd counts).
    pub fn deserialize(bytes: &[u8]) -> Option<HeaderMap> {
        if bytes.is_empty() {
            return Some(HeaderMap::new());
        }
        let count = usize::try_from(read_u32(bytes, 0)?).ok()?;
        if count > MAX_PAIRS {
            return None;
        }
        let mut sizes = Vec::with_capacity(count);
        let mut offset = 4usize;
        for _ in 0..count {
            let k = usize::try_from(read_u32(bytes, offset)?).ok()?;
            let v = usize::try_from(read_u32(bytes, offset.checked_add(4)?)?).ok()?;
            sizes.push((k, v));
            offset = offset.checked_add(8)?;
        }
        let mut map = HeaderMap::new();
        for (k, v) in sizes {
            let key = take(bytes, &mut offset, k)?;
            let value = take(bytes, &mut offset, v)?;
            map.pairs.push((lower(key), value.to_vec()));
        }
        (offset == bytes.len()).then_some(map)
    }
}

/// Reads `len` bytes then a NUL terminator at `offset`, advancing it.
fn take<'a>(bytes: &'a [u8], offset: &mut usize, len: usize) -> Option<&'a [u8]> {
    let end = offset.checked_add(len)?;
    let field = bytes.get(*offset..end)?;
    if *bytes.get(end)? != 0 {
        return None;
    }
    *offset = end.checked_add(1)?;
    Some(field)
}

fn read_u32(bytes: &[u8], offset: usize) -> Option<u32> {
    let raw = bytes.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_le_bytes(raw.try_into().ok()?))
}

fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

fn lower(name: &[u8]) -> Vec<u8> {
    name.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_matches_the_sdk_layout() {
        let map = HeaderMap::from_pairs(&[(":path", "/a"), ("X-Key", "v1"), ("x-key", "v2")]);
        let wire = map.serialize();
        assert_eq!(&wire[..4], &3u32.to_le_bytes());
        assert_eq!(&wire[4..8], &5u32.to_le_bytes());
        assert_eq!(&wire[8..12], &2u32.to_le_bytes());
        assert_eq!(&wire[28..34], b":path\0");
        assert_eq!(wire.len(), map.serialized_size());
        assert_eq!(HeaderMap::deserialize(&wire), Some(map.clone()));
        assert_eq!(
            map.get_all("x-key"),
            vec![b"v1".as_slice(), b"v2".as_slice()]
        );
    }

    #[test]
    fn replace_keeps_one_value_and_remove_drops_all() {
        let mut map = HeaderMap::from_pairs(&[("a", "1"), ("b", "x"), ("A", "2")]);
        map.replace(b"A", b"3");
        assert_eq!(map.get_all("a"), vec![b"3".as_slice()]);
        map.remove(b"B");
        assert_eq!(map.len(), 1);
        map.replace(b"new", b"v");
        assert_eq!(map.get_str("NEW"), Some("v"));
    }

    #[test]
    fn malformed_input_is_refused_never_panics() {
        let good = HeaderMap::from_pairs(&[("k", "v"), ("kk", "vv")]).serialize();
        for cut in 0..good.len() {
            let _ = HeaderMap::deserialize(&good[..cut]);
            assert!(cut == 0 || HeaderMap::deserialize(&good[..cut]).is_none());
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(HeaderMap::deserialize(&trailing).is_none());
        let mut no_nul = good.clone();
        if let Some(last) = no_nul.last_mut() {
            *last = b'x';
        }
        assert!(HeaderMap::deserialize(&no_nul).is_none());
        let mut seed = 0x1234_5678_u32;
        for _ in 0..2000 {
            let len = (seed % 40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (seed >> 16) as u8 % 8
                })
                .collect();
            if let Some(map) = HeaderMap::deserialize(&bytes) {
                assert_eq!(map.serialize().len(), map.serialized_size());
            }
        }
        assert!(HeaderMap::deserialize(&u32::MAX.to_le_bytes()).is_none());
    }
}
