//! Shared data (key/value with compare-and-swap) and shared queues, proxy-wide.

use super::common::{mem, reply, status, trap, BAD_ARGUMENT, C, INVALID_MEMORY, NOT_FOUND, R};
use crate::memory::{copy_out, read, read_string, write_u32};
use crate::shared::QueueOwner;
use crate::state::lock;

pub(crate) fn proxy_get_shared_data(
    caller: C<'_>,
    kptr: u32,
    klen: u32,
    ptr_ptr: u32,
    size_ptr: u32,
    cas_ptr: u32,
) -> R {
    let Some(key) = read(caller, kptr, klen) else {
        return Ok(INVALID_MEMORY);
    };
    let found = lock(&caller.data().shared.data).get(&String::from_utf8_lossy(&key));
    match found {
        Ok((value, cas)) => {
            if !copy_out(caller, &value, ptr_ptr, size_ptr)? {
                return Ok(INVALID_MEMORY);
            }
            Ok(mem(write_u32(caller, cas_ptr, cas)))
        }
        Err(s) => Ok(s.code()),
    }
}

pub(crate) fn proxy_set_shared_data(
    caller: C<'_>,
    kptr: u32,
    klen: u32,
    vptr: u32,
    vlen: u32,
    cas: u32,
) -> R {
    let (Some(key), Some(value)) = (read(caller, kptr, klen), read(caller, vptr, vlen)) else {
        return Ok(INVALID_MEMORY);
    };
    let mut data = lock(&caller.data().shared.data);
    let result = data.set(&String::from_utf8_lossy(&key), &value, cas);
    // Kong traps when its zone cannot hold the value even after evicting every other entry:
    // ngx_wa_shm_kv_set_locked (src/common/shm/ngx_wa_shm_kv.c) expires LRU/SLRU entries until the
    // slab allocation succeeds, else returns NGX_ERROR, which ngx_proxy_wasm_hfuncs_set_shared_data
    // (src/common/proxy_wasm/ngx_proxy_wasm_host.c) turns into a trap, not a status.
    if result == Err(crate::types::Status::InternalFailure) && data.is_kong_zone() {
        return Err(trap(
            "failed setting value to shm (could not write to slab)",
        ));
    }
    Ok(status(result))
}

pub(crate) fn proxy_register_shared_queue(caller: C<'_>, ptr: u32, len: u32, id_ptr: u32) -> R {
    let Some(name) = read_string(caller, ptr, len) else {
        return Ok(BAD_ARGUMENT);
    };
    let state = caller.data();
    let owner = QueueOwner {
        worker: state.worker,
        context_id: state.root_context_id,
    };
    let id = lock(&state.shared.queues).register(&state.shared.config.vm_id, &name, owner);
    Ok(mem(write_u32(caller, id_ptr, id)))
}

pub(crate) fn proxy_resolve_shared_queue(
    caller: C<'_>,
    vptr: u32,
    vlen: u32,
    nptr: u32,
    nlen: u32,
    id_ptr: u32,
) -> R {
    let (Some(vm_id), Some(name)) = (
        read_string(caller, vptr, vlen),
        read_string(caller, nptr, nlen),
    ) else {
        return Ok(BAD_ARGUMENT);
    };
    let state = caller.data();
    let vm_id = if vm_id.is_empty() {
        state.shared.config.vm_id.clone()
    } else {
        vm_id
    };
    let found = lock(&state.shared.queues).resolve(&vm_id, &name);
    match found {
        Some(id) => Ok(mem(write_u32(caller, id_ptr, id))),
        None => Ok(NOT_FOUND),
    }
}

pub(crate) fn proxy_dequeue_shared_queue(caller: C<'_>, id: u32, ptr_ptr: u32, size_ptr: u32) -> R {
    let item = lock(&caller.data().shared.queues).dequeue(id);
    match item {
        Ok(bytes) => reply(caller, &bytes, ptr_ptr, size_ptr),
        Err(s) => Ok(s.code()),
    }
}

pub(crate) fn proxy_enqueue_shared_queue(caller: C<'_>, id: u32, ptr: u32, len: u32) -> R {
    let Some(value) = read(caller, ptr, len) else {
        return Ok(INVALID_MEMORY);
    };
    let result = lock(&caller.data().shared.queues).enqueue(id, &value);
    Ok(status(result))
}
