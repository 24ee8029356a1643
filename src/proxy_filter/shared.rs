//! The store of the cross-worker lease and publish protocol ([`crate::coordination`]): the
//! host's shared data, through the wrapped hostcalls.

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
