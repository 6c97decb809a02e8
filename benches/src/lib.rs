//! # treaty-benches: Criterion benchmarks of Treaty
//!
//! ```text
//!   CSV file ──load+filter──► f64 columns ──encode──► i64 fixed point ──aggregate──► Σx̃, Σx̃²
//!   └──────────────── csv_load_and_aggregate ───────┘ fixed_point_encode   local_aggregates
//!
//!   aggregates ──seeds (DH) + zero-sharing mask──► additive share ──HPKE──► sealed share
//!              └──── stats_protocol_in_memory ───┘                 └ seal_open ┘
//!
//!   submit ──► coordinator ──► 3 party nodes (mTLS gRPC) ──► upload ──► analyst opens
//!   └──────────────────────── end_to_end_stats_job ─────────────────────────────┘
//! ```
//!
//! The stats benches live in `benches/stats.rs` (table below); `benches/rep3.rs` and
//! `benches/psi.rs` document their own groups (rep3 engine ops; two-party PSI and its
//! curve-arithmetic floor). This library holds only these docs. Each group uses
//! [`BenchmarkId`](https://docs.rs/criterion/latest/criterion/struct.BenchmarkId.html) over its
//! input size and sets a throughput, and prints once per size (to stderr, as it starts) the
//! communication of one run — rounds and payload bytes per party — which criterion does not
//! measure:
//!
//! | group | input sizes | measures | throughput |
//! | --- | --- | --- | --- |
//! | `fixed_point_encode` | 10⁴, 10⁵, 10⁶ values | `FixedPoint::encode_signed` per value into a `Vec<i64>`, as `treaty_party::stats::local` does | values |
//! | `local_aggregates` | 10⁴, 10⁵, 10⁶ rows × 3 columns | `LocalAggregates::from_encoded` (count, Σx̃, Σx̃² in i128; rayon over columns) | rows |
//! | `stats_protocol_in_memory` | 2, 3, 5 parties | `stats::run` for every party over `run_in_memory`: the Ristretto255 seed agreement (1 round, 32 bytes per peer) and the zero-sharing mask, 3 columns. Independent of rows | payload bytes, all parties |
//! | `seal_open` | 7 × u128 (a 3-column share) | `output::seal` and `output::open` (HPKE X25519/ChaCha20-Poly1305) separately | plaintext bytes |
//! | `csv_load_and_aggregate` | 10⁴, 10⁵ rows | `treaty_party::stats::local` on a synthetic claims CSV for the demo job (claim_amount, paid_amount, length_of_stay; diagnosis_group = diabetes): parse, filter, encode, aggregate. The file is written once, outside the timed loop | rows in the file |
//! | `end_to_end_stats_job` | 3 parties × 10⁴ rows | one demo `stats` job on a running in-process deployment (coordinator + 3 party nodes on loopback, mutual TLS): submit, follow to the end, fetch and open the result. Data, PKI and nodes are set up once, outside the timed loop; 10 samples | rows over all parties |
//!
//! What the benches do *not* cover: process start-up, key and certificate generation, synthetic
//! data generation, and networks slower than loopback (the protocol's 2 rounds cost 2 round trips
//! on a real network).
//!
//! ## Running
//!
//! ```text
//! cargo bench -p treaty-benches                        # everything (several minutes)
//! cargo bench -p treaty-benches -- local_aggregates    # one group (a regex on bench names)
//! cargo bench -p treaty-benches -- --warm-up-time 1 --measurement-time 2   # a quick pass
//! cargo bench -p treaty-benches --no-run               # build only (CI)
//! ```
//!
//! Reports go to `target/criterion/`.
#![forbid(unsafe_code)]
