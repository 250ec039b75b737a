//! The wire decoder on arbitrary bytes: it must return, never panic, never allocate what a
//! length prefix claims.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

// The server's allocator, so the fuzzer exercises what production runs: oversized reservations
// from decoders fail instead of succeeding virtually (see tandem::alloc).
#[global_allocator]
static ALLOCATOR: tandem::alloc::BoundedAlloc = tandem::alloc::BoundedAlloc;

fuzz_target!(
    init: common::init(),
    |data: &[u8]| {
    let _ = tandem_crdt_model::protocol::decode_frame(data, 1 << 20);
    }
);
