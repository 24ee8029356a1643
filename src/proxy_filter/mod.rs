//! The proxy-wasm adapter: host events in, core calls, host calls out. No decisions here.
