//! The store of the cross-worker lease and publish protocol ([`crate::coordination`]): the
//! host's shared data, through the wrapped hostcalls.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use super::host;
use crate::coordination::{SharedStore, StoreError};

/// proxy-wasm status `CasMismatch`.
const CAS_MISMATCH: u32 = 7;

pub struct HostStore;

impl SharedStore for HostStore {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        host::get_shared_data(key)
    }

    fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), StoreError> {
        host::set_shared_data(key, value, cas).map_err(|status| match status {
            CAS_MISMATCH => StoreError::CasMismatch,
            _ => StoreError::Other,
        })
    }
}

/// This VM's name in leases: random per VM.
pub fn holder_id() -> String {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(host::now_millis());
    format!("{:016x}", hasher.finish())
}
