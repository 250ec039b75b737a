//! Update application as a room decides it (see `checks::apply_update`).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "checks.rs"]
mod checks;
#[path = "common.rs"]
mod common;

// The server's allocator, so the fuzzer exercises what production runs: oversized reservations
// from decoders fail instead of succeeding virtually (see tandem_crdt_model::bounded_alloc).
#[global_allocator]
static ALLOCATOR: tandem_crdt_model::bounded_alloc::BoundedSystem =
    tandem_crdt_model::bounded_alloc::BOUNDED_SYSTEM;

fuzz_target!(
    init: common::init(),
    |data: &[u8]| checks::apply_update(data)
);
