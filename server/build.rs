//! The web demo's built bundle is embedded in the binary (`src/site.rs`, `include_dir!`), which
//! cannot tell cargo about the files it reads on stable Rust: without this, a rebuilt demo would
//! not rebuild the binary.
fn main() {
    println!("cargo:rerun-if-changed=../web-demo/dist");
}
