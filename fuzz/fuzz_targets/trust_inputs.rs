#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| treaty_fuzz::trust_inputs(data));
