//! Links the freestanding program against the C runtime only (crt1 + libc, no Rust std):
//! rustc already passes `-nodefaultlibs`, so libc must be named. Nothing provides an allocator.

fn main() {
    println!("cargo:rustc-link-arg-bins=-lc");
    println!("cargo:rerun-if-changed=build.rs");
}
