//! docs/PROTOCOL.md stays true: every message has a section whose tag, name and example frame
//! are those of `frames.json`.

use serde_json::Value;

#[test]
fn protocol_doc_examples_match_the_vectors() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md"))
        .expect("docs/PROTOCOL.md");
    let vectors: Value = serde_json::from_str(
        &std::fs::read_to_string(conformance::vectors_dir().join("frames.json"))
            .expect("frames.json"),
    )
    .expect("JSON");
    let cases = vectors["cases"].as_array().expect("cases");
    for case in cases {
        let tag = case["tag"].as_u64().expect("tag");
        let name = case["message"].as_str().expect("message");
        let heading = format!("### {tag}. `{name}`");
        let start = doc
            .find(&heading)
            .unwrap_or_else(|| panic!("PROTOCOL.md has no `{heading}`"));
        let section = &doc[start..];
        let hex_start = section.find("```hex\n").expect("example block") + 7;
        let hex_end = hex_start + section[hex_start..].find("```").expect("block end");
        let example: String = section[hex_start..hex_end].split_whitespace().collect();
        assert_eq!(
            example,
            case["frame"].as_str().expect("frame"),
            "example of {name} differs"
        );
        let table_tag = format!("| | tag | `{tag:02x}` |");
        assert!(section.contains(&table_tag), "{name}: tag row missing");
    }
    assert!(
        doc.contains(&format!("a message tag ≥ {}", cases.len())),
        "the UnknownTag row must name the first unknown tag"
    );
}
