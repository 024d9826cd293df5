//! Writes every conformance vector file into `conformance/vectors/`.
//!
//! `gen-vectors` rewrites the files; `gen-vectors --check` writes nothing and exits non-zero if
//! any committed file differs from what the generator produces now.

use anyhow::{Context, bail};

fn main() -> anyhow::Result<()> {
    let check_only = std::env::args().any(|a| a == "--check");
    let dir = conformance::vectors_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut stale = Vec::new();
    for (name, value) in conformance::generate_all() {
        let path = dir.join(name);
        let text = conformance::render(&value);
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        if old == text {
            continue;
        }
        if check_only {
            stale.push(name);
        } else {
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    if !stale.is_empty() {
        bail!("vectors out of date (run `cargo run -p conformance --bin gen-vectors`): {stale:?}");
    }
    Ok(())
}
