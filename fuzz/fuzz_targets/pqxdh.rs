#![no_main]
use proto_core::fuzzing::{PqxdhWorld, pqxdh_from, pqxdh_start};
static WORLD: std::sync::LazyLock<PqxdhWorld> = std::sync::LazyLock::new(pqxdh_start);
libfuzzer_sys::fuzz_target!(|data: &[u8]| pqxdh_from(&WORLD, data));
