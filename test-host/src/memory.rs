//! Bounds-checked access to guest memory from host functions, and guest allocation.
//!
//! Every pointer and length comes from the guest and is untrusted: reads and writes outside linear memory
//! return `None`/`false`, which host functions turn into `InvalidMemoryAccess` as Envoy does.

use crate::engine::{Guest, Trap};

fn range(ptr: u32, len: u32) -> Option<std::ops::Range<usize>> {
    let start = usize::try_from(ptr).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    Some(start..end)
}

/// Copies `len` bytes at `ptr` out of guest memory.
pub(crate) fn read(caller: &dyn Guest, ptr: u32, len: u32) -> Option<Vec<u8>> {
    caller.memory().get(range(ptr, len)?).map(<[u8]>::to_vec)
}

/// Reads guest bytes as UTF-8 text.
pub(crate) fn read_string(caller: &dyn Guest, ptr: u32, len: u32) -> Option<String> {
    String::from_utf8(read(caller, ptr, len)?).ok()
}

/// Writes `bytes` at `ptr`.
pub(crate) fn write(caller: &mut dyn Guest, ptr: u32, bytes: &[u8]) -> bool {
    let Some(r) = range(ptr, u32::try_from(bytes.len()).unwrap_or(u32::MAX)) else {
        return false;
    };
    match caller.memory_mut().get_mut(r) {
        Some(slot) => {
            slot.copy_from_slice(bytes);
            true
        }
        None => false,
    }
}

pub(crate) fn write_u32(caller: &mut dyn Guest, ptr: u32, value: u32) -> bool {
    write(caller, ptr, &value.to_le_bytes())
}

pub(crate) fn write_u64(caller: &mut dyn Guest, ptr: u32, value: u64) -> bool {
    write(caller, ptr, &value.to_le_bytes())
}

/// Copies `bytes` into a fresh guest allocation and stores its address and size at `ptr_ptr`/`size_ptr`.
/// Empty data is returned as a null pointer and size 0 without allocating, as proxy-wasm-cpp-host does.
/// Returns `Ok(false)` when the guest's memory or allocator refuses; `Err` if the allocator trapped.
pub(crate) fn copy_out(
    caller: &mut dyn Guest,
    bytes: &[u8],
    ptr_ptr: u32,
    size_ptr: u32,
) -> Result<bool, Trap> {
    let Ok(size) = u32::try_from(bytes.len()) else {
        return Ok(false);
    };
    let mut addr = 0u32;
    if size > 0 {
        let Some(allocated) = caller.allocate(size)? else {
            return Ok(false);
        };
        addr = allocated;
        if addr == 0 || !write(caller, addr, bytes) {
            return Ok(false);
        }
    }
    Ok(write_u32(caller, ptr_ptr, addr) && write_u32(caller, size_ptr, size))
}
