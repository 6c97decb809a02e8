#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| treaty_fuzz::party_inputs(data));
