//! The store of the cross-worker lease and publish protocol ([`crate::coordination`]): the
//! host's shared data, through the wrapped hostcalls.

use super::host;
use crate::coordination::{SharedStore, StoreError};

/// proxy-wasm status `CasMismatch`: 8 in the ABI (proxy-wasm-rust-sdk src/types.rs, `Status`;
/// the spec's `WasmResult`). It was 7 (`Empty`) here, so on Kong, where an existing key is
/// written only with its stored CAS, [`crate::coordination::overwrite`] never retried and every
/// republication of a key failed (each worker then fetched the snapshot itself).
const CAS_MISMATCH: u32 = proxy_wasm::types::Status::CasMismatch as u32;

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
