//! Every committed fuzzing input (`fuzz/corpus/<target>/`: the seeds, known crashers of other
//! Yjs servers and every crash found here, `regression-*`) replayed through the same check its
//! fuzz target runs (`fuzz/fuzz_targets/checks.rs`), without libFuzzer or sanitizers, so each
//! past crash is a regression test of the ordinary test run. `fuzz/known-yrs-crashes/` (bugs
//! of `yrs` itself that a room no longer reaches) goes through `apply_update` as well.

use std::path::{Path, PathBuf};

#[path = "../../fuzz/fuzz_targets/checks.rs"]
mod checks;
#[path = "../../fuzz/fuzz_targets/room_check.rs"]
mod room_check;

// The server's allocator, bounded as the fuzz targets bound it: allocation bombs must be refused,
// not granted virtually by the kernel.
#[global_allocator]
static ALLOCATOR: tandem_crdt_model::bounded_alloc::BoundedSystem =
    tandem_crdt_model::bounded_alloc::BOUNDED_SYSTEM;

fn inputs(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no inputs", dir.display());
    files
}

fn replay(dirs: &[&str], check: impl Fn(&[u8])) {
    checks::bound_allocations();
    for dir in dirs {
        for path in inputs(dir) {
            let data = std::fs::read(&path).expect("readable input");
            eprintln!("replaying {}", path.display());
            check(&data);
        }
    }
}

#[test]
fn decode_frame_corpus() {
    replay(&["corpus/decode_frame"], checks::decode_frame);
}

#[test]
fn apply_update_corpus() {
    replay(
        &["corpus/apply_update", "known-yrs-crashes"],
        checks::apply_update,
    );
}

#[test]
fn connection_corpus() {
    let connection = room_check::Connection::new();
    // The apply_update inputs too: each is a bare update, which as a frame is mostly garbage,
    // and as a frame body (split by length bytes) exercises the room with hostile updates.
    replay(&["corpus/connection", "corpus/apply_update"], |data| {
        connection.run(data)
    });
}

#[test]
fn nesting_corpus() {
    replay(&["corpus/nesting"], checks::nesting);
}
