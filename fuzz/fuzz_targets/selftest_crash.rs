//! Not a fuzz target: the input that proves `ci/fuzz-smoke` fails. Built only with
//! `--features selftest` (see `ci/fuzz-smoke-selftest`), never listed for the smoke run.
//! Each marker triggers one failure the smoke run must report; any other input does nothing.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| match data {
    b"SEALROOM-SELFTEST-CRASH" => panic!("fuzz-smoke self-test: a crash on the marker input"),
    b"SEALROOM-SELFTEST-LEAK" => core::mem::forget(std::hint::black_box(vec![7u8; 4096])),
    b"SEALROOM-SELFTEST-OOM" => drop(std::hint::black_box(vec![7u8; 3 << 30])),
    b"SEALROOM-SELFTEST-TIMEOUT" => loop {
        std::hint::black_box(data);
    },
    _ => {}
});
