#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| host_client::fuzzing::link_state(data));
