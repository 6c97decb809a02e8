#![no_main]
//! FHE uploads, masked results and server key imports (`cargo fuzz run --features fhe
//! fhe_wire`; see `treaty_fhe::fuzzing`).

use std::sync::OnceLock;

use treaty_fhe::fuzzing::{WireFixture, wire_items};

static FIXTURE: OnceLock<WireFixture> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let fixture = FIXTURE.get_or_init(|| WireFixture::new().expect("FHE keys for the fixture"));
    wire_items(fixture, data);
});
