//! Nesting built one update at a time against the bound (see `checks::nesting`).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "checks.rs"]
mod checks;
#[path = "common.rs"]
mod common;

// The server's allocator, as in every target (see tandem_crdt_model::bounded_alloc).
#[global_allocator]
static ALLOCATOR: tandem_crdt_model::bounded_alloc::BoundedSystem =
    tandem_crdt_model::bounded_alloc::BOUNDED_SYSTEM;

fuzz_target!(
    init: common::init(),
    |data: &[u8]| checks::nesting(data)
);
