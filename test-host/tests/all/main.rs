//! ABI tests of the test host against real proxy-wasm modules built from `tests/fixtures/`.

mod backends;
mod callouts;
mod campaign;
mod campaign_faults;
mod campaign_load;
mod campaign_never_trap;
mod component;
mod decision_cases;
mod fixture;
mod fleet;
mod headers;
mod host_limits;
mod hot_path;
mod kong;
mod loading;
mod origin;
mod paths;
mod propagation;
mod real_upstream;
mod rg;
mod scenarios;
mod serve;
mod shared_data;
mod sharing;
mod ticks;
mod traps;
