//! Exact, sorted tables of hashed ids: sets (delta `jti`/`sid`) and "not before" maps
//! (subjects, tenants). Stored strictly ascending so lookups are binary searches and an
//! encoding is unique; decoders refuse unsorted or duplicate entries.

use super::error::SnapshotError;
use super::ids::{HashedId, ID_LEN};
use crate::wire::{Reader, Writer};

/// Size of one not-before record: hashed id then not_before (u64, big-endian).
pub const NOT_BEFORE_RECORD_LEN: usize = ID_LEN + 8;

/// Hashed ids, strictly ascending.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdSet {
    ids: Vec<HashedId>,
}

impl IdSet {
    /// Sorts and deduplicates.
    pub fn from_unsorted(mut ids: Vec<HashedId>) -> Self {
        ids.sort_unstable();
        ids.dedup();
        IdSet { ids }
    }

    pub fn contains(&self, id: &HashedId) -> bool {
        self.ids.binary_search(id).is_ok()
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = HashedId> + '_ {
        self.ids.iter().copied()
    }

    pub fn encode(&self, w: &mut Writer) -> Result<(), SnapshotError> {
        w.u32_len(self.ids.len())?;
        for id in &self.ids {
            w.bytes(id);
        }
        Ok(())
    }

    /// Reads a u32 count and that many ids; `what` names the table in errors.
    pub fn decode(r: &mut Reader<'_>, what: &'static str) -> Result<Self, SnapshotError> {
        let count = r.u32_len()?;
        let mut records = Reader::new(r.take_records(count, ID_LEN)?);
        let mut ids: Vec<HashedId> = Vec::with_capacity(count);
        for _ in 0..count {
            let id = records.array::<ID_LEN>()?;
            if ids.last().is_some_and(|prev| *prev >= id) {
                return Err(SnapshotError::Corrupt(what));
            }
            ids.push(id);
        }
        records.finish()?;
        Ok(IdSet { ids })
    }
}

/// Hashed id -> not_before, strictly ascending by id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NotBeforeTable {
    entries: Vec<(HashedId, u64)>,
}

impl NotBeforeTable {
    /// Sorts; an id listed more than once keeps its latest not_before.
    pub fn from_unsorted(mut entries: Vec<(HashedId, u64)>) -> Self {
        entries.sort_unstable();
        let mut out: Vec<(HashedId, u64)> = Vec::with_capacity(entries.len());
        for (id, not_before) in entries {
            match out.last_mut() {
                // Sorted by (id, not_before): a repeat is never older than what is kept.
                Some(last) if last.0 == id => last.1 = not_before,
                _ => out.push((id, not_before)),
            }
        }
        NotBeforeTable { entries: out }
    }

    pub fn not_before(&self, id: &HashedId) -> Option<u64> {
        self.entries
            .binary_search_by(|(probe, _)| probe.cmp(id))
            .ok()
            .and_then(|i| self.entries.get(i))
            .map(|(_, nb)| *nb)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn encode(&self, w: &mut Writer) -> Result<(), SnapshotError> {
        w.u32_len(self.entries.len())?;
        for (id, not_before) in &self.entries {
            w.bytes(id);
            w.u64(*not_before);
        }
        Ok(())
    }

    /// Reads a u32 count and that many records; `what` names the table in errors.
    pub fn decode(r: &mut Reader<'_>, what: &'static str) -> Result<Self, SnapshotError> {
        let count = r.u32_len()?;
        let mut records = Reader::new(r.take_records(count, NOT_BEFORE_RECORD_LEN)?);
        let mut entries: Vec<(HashedId, u64)> = Vec::with_capacity(count);
        for _ in 0..count {
            let id = records.array::<ID_LEN>()?;
            let not_before = records.u64()?;
            if entries.last().is_some_and(|(prev, _)| *prev >= id) {
                return Err(SnapshotError::Corrupt(what));
            }
            entries.push((id, not_before));
        }
        records.finish()?;
        Ok(NotBeforeTable { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> HashedId {
        [n; ID_LEN]
    }

    #[test]
    fn tables_round_trip_and_look_up() {
        let set = IdSet::from_unsorted(vec![id(3), id(1), id(3), id(2)]);
        assert_eq!(set.len(), 3);
        let mut w = Writer::new();
        set.encode(&mut w).unwrap();
        let t =
            NotBeforeTable::from_unsorted(vec![(id(5), 10), (id(4), 7), (id(5), 30), (id(5), 20)]);
        assert_eq!(t.not_before(&id(5)), Some(30));
        assert_eq!(t.not_before(&id(6)), None);
        t.encode(&mut w).unwrap();
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes);
        assert_eq!(IdSet::decode(&mut r, "s").unwrap(), set);
        assert_eq!(NotBeforeTable::decode(&mut r, "t").unwrap(), t);
        r.finish().unwrap();
    }

    #[test]
    fn unsorted_and_duplicate_records_are_refused() {
        for order in [[2u8, 1], [1, 1]] {
            let mut w = Writer::new();
            w.u32(2);
            for n in order {
                w.bytes(&id(n));
                w.u64(0);
            }
            let bytes = w.into_bytes();
            let err = NotBeforeTable::decode(&mut Reader::new(&bytes), "subjects unsorted");
            assert_eq!(err, Err(SnapshotError::Corrupt("subjects unsorted")));
            let mut w = Writer::new();
            w.u32(2);
            for n in order {
                w.bytes(&id(n));
            }
            let bytes = w.into_bytes();
            assert!(IdSet::decode(&mut Reader::new(&bytes), "x").is_err());
        }
    }

    #[test]
    fn counts_larger_than_the_input_fail_before_allocating() {
        let bytes = [0xff, 0xff, 0xff, 0xff, 0, 0];
        assert_eq!(
            NotBeforeTable::decode(&mut Reader::new(&bytes), "t"),
            Err(SnapshotError::Truncated)
        );
        assert_eq!(
            IdSet::decode(&mut Reader::new(&bytes), "t"),
            Err(SnapshotError::Truncated)
        );
    }
}
