#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| treaty_fuzz::mpc_peers(data));
