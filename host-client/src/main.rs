//! `sealroom`: the command-line client. The program lives in the library (`src/lib.rs`).

fn main() {
    host_client::main();
}
