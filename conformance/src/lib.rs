//! Sealroom's conformance vectors: the files every implementation (the Rust core, the web
//! client, any future port) must match byte for byte.
//!
//! Format: one JSON file per topic in `conformance/vectors/`, hex for bytes, each file
//! `{ "description", "cases": [...] }`, each case with a `description` and an `expect` of
//! `"accept"` or `"reject:<ErrorVariant>"`. The generator (`cargo run -p conformance --bin
//! gen-vectors`) is deterministic; the tests fail if regenerating would change a committed file.

use std::path::PathBuf;

use serde_json::Value;

pub mod content;
pub mod crypto;
pub mod frames;
pub mod names;
pub mod seeded;

/// Every vector file this crate generates, by file name.
pub fn generate_all() -> Vec<(&'static str, Value)> {
    let mut files = frames::generate();
    files.extend(content::generate());
    files.extend(crypto::generate());
    files.extend(names::generate());
    files
}

/// Runs every case of one vector file against proto-core; returns the number of cases checked.
pub fn check(file: &str, v: &Value) -> Result<usize, String> {
    if let Some(r) = frames::check(file, v) {
        return r;
    }
    if let Some(r) = content::check(file, v) {
        return r;
    }
    if let Some(r) = crypto::check(file, v) {
        return r;
    }
    if let Some(r) = names::check(file, v) {
        return r;
    }
    Err(format!("{file}: no checker knows this vector file"))
}

/// The committed text of a vector file: pretty JSON and a final newline.
pub fn render(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// Where the committed vectors live.
pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors")
}

/// Decodes a hex field of a case, with the field name in the error.
pub fn hex_field(case: &Value, field: &str) -> Result<Vec<u8>, String> {
    let s = case
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing hex field `{field}`"))?;
    hex::decode(s).map_err(|e| format!("field `{field}` is not hex: {e}"))
}

/// The `cases` array of a vector file.
pub fn cases(v: &Value) -> Result<&Vec<Value>, String> {
    v.get("cases")
        .and_then(Value::as_array)
        .ok_or_else(|| "missing `cases` array".to_owned())
}
