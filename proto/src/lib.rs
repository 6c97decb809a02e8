//! Treaty's wire types: the coordinator's control plane and the party-to-party data plane.
//!
//! Generated from `proto/treaty/v1/*.proto` by `protox` and `tonic-prost-build` at build time.
//! This crate holds no logic beyond naming the job kinds ([`JobKind`]), capping text that
//! arrives over the wire ([`text::peer_text`]) and cutting connections at shutdown
//! ([`sever::Sever`]); see `treaty-coordinator` and `treaty-party` for
//! the services.
#![forbid(unsafe_code)]

/// Version 1 of the Treaty protocol.
#[allow(missing_docs, unreachable_pub, unused_qualifications, clippy::all)]
pub mod v1 {
    tonic::include_proto!("treaty.v1");
}

mod kind;
pub mod sever;
pub mod text;

pub use kind::JobKind;

/// Maximum size of one gRPC message on the control plane (sealed results travel in chunks).
pub const MAX_CONTROL_MESSAGE: usize = 8 * 1024 * 1024;
/// Size of one chunk of a sealed result or of a data-plane message.
pub const CHUNK_SIZE: usize = 1024 * 1024;
/// Jobs in a `ListJobs` page when the request's `limit` is 0.
pub const DEFAULT_JOBS_PAGE: u32 = 50;
/// Most jobs in one `ListJobs` page: a larger `limit` is clamped to it.
pub const MAX_JOBS_PAGE: u32 = 200;
/// Maximum size of one gRPC frame on the data plane: one chunk plus framing.
pub const MAX_DATA_FRAME: usize = CHUNK_SIZE + 64 * 1024;
