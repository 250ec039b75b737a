//! One connection's frames into a real room (see `room_check::Connection`; needs `--features room`).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "checks.rs"]
mod checks;
#[path = "common.rs"]
mod common;
#[path = "room_check.rs"]
mod room_check;

// The server's allocator, so the fuzzer exercises what production runs: oversized reservations
// from decoders fail instead of succeeding virtually (see tandem_crdt_model::bounded_alloc).
#[global_allocator]
static ALLOCATOR: tandem_crdt_model::bounded_alloc::BoundedSystem =
    tandem_crdt_model::bounded_alloc::BOUNDED_SYSTEM;

fuzz_target!(
    init: common::init(),
    |data: &[u8]| {
        static CONNECTION: std::sync::OnceLock<room_check::Connection> = std::sync::OnceLock::new();
        CONNECTION.get_or_init(room_check::Connection::new).run(data)
    }
);
