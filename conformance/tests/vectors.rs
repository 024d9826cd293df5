//! Runs every committed vector against proto-core and fails if regenerating would change one.

use std::collections::BTreeSet;

#[test]
fn committed_vectors_match_the_generator() {
    let dir = conformance::vectors_dir();
    for (name, value) in conformance::generate_all() {
        let committed = std::fs::read_to_string(dir.join(name))
            .unwrap_or_else(|e| panic!("{name} is not committed ({e}); run gen-vectors"));
        assert!(
            committed == conformance::render(&value),
            "{name} differs from the generator's output: run `cargo run -p conformance --bin gen-vectors` and review the diff"
        );
    }
}

#[test]
fn every_committed_vector_passes() {
    let dir = conformance::vectors_dir();
    let mut total = 0;
    let mut files = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("vectors dir") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name")
            .to_owned();
        let text = std::fs::read_to_string(&path).expect("readable vector file");
        let value: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        let n = conformance::check(&name, &value).unwrap_or_else(|e| panic!("{e}"));
        assert!(n > 0, "{name} has no cases");
        total += n;
        files.insert(name);
    }
    let generated: BTreeSet<String> = conformance::generate_all()
        .into_iter()
        .map(|(n, _)| n.to_owned())
        .collect();
    assert_eq!(
        files, generated,
        "committed files and generated files differ"
    );
    println!("{total} vector cases passed across {} files", files.len());
}

#[test]
fn every_message_type_and_decode_error_has_a_vector() {
    use proto_core::{DecodeError, Message};
    let all = conformance::generate_all();
    let frames = &all
        .iter()
        .find(|(n, _)| *n == "frames.json")
        .expect("frames.json")
        .1;
    let tags: Vec<u64> = frames["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| c["tag"].as_u64().expect("tag"))
        .collect();
    assert_eq!(tags, (0..u64::from(Message::TAG_COUNT)).collect::<Vec<_>>());
    let rejects = &all
        .iter()
        .find(|(n, _)| *n == "frames-reject.json")
        .expect("rejects")
        .1;
    for e in DecodeError::ALL {
        let want = format!("reject:{}", e.name());
        assert!(
            rejects["cases"]
                .as_array()
                .expect("cases")
                .iter()
                .any(|c| c["expect"] == want.as_str()),
            "no rejection vector for {want}"
        );
    }
}
