#![no_main]
use proto_core::fuzzing::{InteractionStart, interaction_from, interaction_start};
static START: std::sync::LazyLock<InteractionStart> = std::sync::LazyLock::new(interaction_start);
libfuzzer_sys::fuzz_target!(|data: &[u8]| interaction_from(&START, data));
