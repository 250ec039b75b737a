//! Set-up shared by every target: run as production runs.

/// The allocator bound a server with default limits uses, and a panic hook that treats panics
/// the code under test catches as handled: the server guards every `yrs` call with
/// `catch_unwind`, while libfuzzer-sys would otherwise abort on any panic. A panic that escapes
/// still aborts in libfuzzer-sys' own `catch_unwind`. `TANDEM_FUZZ_VERBOSE=1` prints every
/// panic, caught or not.
pub fn init() {
    super::checks::bound_allocations();
    let verbose = std::env::var_os("TANDEM_FUZZ_VERBOSE").is_some();
    std::panic::set_hook(Box::new(move |info| {
        if verbose {
            eprintln!("panic (caught or not): {info}");
        }
    }));
}
