//! The data plane: `PartyLink` streams between party nodes, and [`GrpcTransport`], the
//! `treaty_mpc::transport::Link` implementation over them (protocols talk to a
//! `treaty_mpc::transport::Channel` over it, which checks tags and sizes and counts traffic).
//!
//! For each job, the party with the lower index dials the one with the higher index and opens one
//! bidirectional `Exchange` stream, whose first frame is a `Hello` naming job, sender and receiver.
//! The accepting side parks the stream in the [`LinkHub`] until its own job session claims it; the
//! session checks that the dialler's TLS certificate is the one the registry pinned for that party.
//!
//! A protocol message travels as one or more `Chunk` frames (at most [`treaty_proto::CHUNK_SIZE`]
//! payload bytes each) carrying its tag (scope id and round: 12 bytes, fixed size) and total length.
//! The receiver refuses a declared length above the limit its channel passes before reserving
//! anything, and checks the chunk arithmetic and that the tag stays the same within a message;
//! the channel then checks the tag. Any violation fails the job, never the node. A failing
//! session sends `Abort` to its peers so they stop at once instead of timing out.
//!
//! What a peer can make this node hold is bounded before it is held: a hello's fields
//! ([`MAX_HELLO_PARTY`], a job id), parked streams ([`MAX_PARKED`] in all,
//! [`MAX_PARKED_PER_PEER`] per sender, [`MAX_PARKED_PER_JOB`] per job, each for at most two
//! minutes), streams per connection ([`MAX_STREAMS_PER_CONNECTION`]), a message's size (the
//! channel's limit) and its time (one deadline per message, however it is chunked), and the
//! text of an abort ([`treaty_proto::text::MAX_PEER_TEXT`]).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::Stream;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};
use treaty_mpc::transport::{Link, PartyIndex, ScopeId, Tag, TransportError};
use treaty_proto::v1::{self as pb, frame, party_link_client::PartyLinkClient, party_link_server};
use treaty_proto::{CHUNK_SIZE, MAX_DATA_FRAME};
use treaty_trust::client::{Dial, endpoint};
use treaty_trust::roster::Roster;
use treaty_trust::tls::{TlsIdentity, peer_cert_sha256};
use treaty_trust::{PeerIdentity, Role, TrustError};

use treaty_proto::text::peer_text;

/// Frames queued per outgoing link before `send` waits (back-pressure).
const OUTBOUND_QUEUE: usize = 32;

/// Most a receiver reserves up front for a message, from the length its first chunk declares.
const RESERVE_AHEAD: usize = 16 * CHUNK_SIZE;
/// How long an accepted stream waits for its session before it is dropped.
const PARK_TIMEOUT: Duration = Duration::from_secs(120);
/// Most accepted streams parked at once; more are refused (a flood cannot exhaust memory).
pub const MAX_PARKED: usize = 4096;
/// Most streams parked at once for one sender: a peer (even a certified one) cannot take the
/// whole parking space from the others. One per job it runs with this node.
pub const MAX_PARKED_PER_PEER: usize = 64;
/// Most streams parked at once for one job: at most one per other party of a job
/// ([`treaty_job::validate::MAX_PARTIES`]).
pub const MAX_PARKED_PER_JOB: usize = treaty_job::validate::MAX_PARTIES;
/// Most bytes of a party id in a hello (the job id must be a job id).
pub const MAX_HELLO_PARTY: usize = 128;
/// How long a new stream may take to send its hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(30);
/// Most concurrent streams on one data-plane connection (HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`):
/// a job has one stream per pair of parties, so this is jobs in flight with one peer.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 128;

type FrameStream = Pin<Box<dyn Stream<Item = Result<pb::Frame, Status>> + Send>>;

/// One direction-pair of a job's link with a peer.
struct Streams {
    inbound: FrameStream,
    outbound: mpsc::Sender<pb::Frame>,
    peer_cert_sha256: Option<[u8; 32]>,
}

enum Slot {
    SessionWaiting(oneshot::Sender<Streams>),
    StreamWaiting(Streams, Instant),
}

/// Rendezvous between accepted `Exchange` streams and the job sessions that claim them.
#[derive(Default)]
pub struct LinkHub {
    slots: Mutex<HashMap<(String, String), Slot>>,
}

impl std::fmt::Debug for LinkHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkHub").finish_non_exhaustive()
    }
}

impl LinkHub {
    fn slots(&self) -> MutexGuard<'_, HashMap<(String, String), Slot>> {
        // Each update is a single insert/remove: a poisoned map is still consistent.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands `link` to the session waiting for (`job`, `from`), or parks it until one claims
    /// it. A second stream for a pair replaces the first. Refused (the stream is dropped) when
    /// parking it would exceed [`MAX_PARKED`], [`MAX_PARKED_PER_PEER`] or
    /// [`MAX_PARKED_PER_JOB`].
    fn offer(&self, job: String, from: String, link: Streams) -> Result<(), ParkingFull> {
        let mut slots = self.slots();
        slots.retain(|_, s| !matches!(s, Slot::StreamWaiting(_, t) if t.elapsed() > PARK_TIMEOUT));
        let key = (job, from);
        if let Some(Slot::SessionWaiting(tx)) = slots.remove(&key) {
            let _ = tx.send(link);
            return Ok(());
        }
        let parked = || {
            slots
                .iter()
                .filter(|(_, s)| matches!(s, Slot::StreamWaiting(..)))
        };
        let full = if slots.len() >= MAX_PARKED {
            Some(ParkingFull::Node)
        } else if parked().filter(|((_, f), _)| *f == key.1).count() >= MAX_PARKED_PER_PEER {
            Some(ParkingFull::Peer)
        } else if parked().filter(|((j, _), _)| *j == key.0).count() >= MAX_PARKED_PER_JOB {
            Some(ParkingFull::Job)
        } else {
            None
        };
        match full {
            Some(full) => Err(full),
            None => {
                slots.insert(key, Slot::StreamWaiting(link, Instant::now()));
                Ok(())
            }
        }
    }

    async fn claim(&self, job: &str, from: &str, timeout: Duration) -> Option<Streams> {
        let key = (job.to_string(), from.to_string());
        let rx = {
            let mut slots = self.slots();
            match slots.remove(&key) {
                Some(Slot::StreamWaiting(link, _)) => return Some(link),
                _ => {
                    let (tx, rx) = oneshot::channel();
                    slots.insert(key.clone(), Slot::SessionWaiting(tx));
                    rx
                }
            }
        };
        let got = tokio::time::timeout(timeout, rx)
            .await
            .ok()
            .and_then(Result::ok);
        if got.is_none() {
            self.slots().remove(&key);
        }
        got
    }

    /// Drops every parked stream and every waiting claim (the node is shutting down): the
    /// streams end, so they do not hold the data plane's graceful shutdown.
    pub(crate) fn clear(&self) {
        self.slots().clear();
    }

    /// Forgets everything parked for `job`.
    pub fn forget_job(&self, job: &str) {
        self.slots().retain(|(j, _), _| j != job);
    }
}

/// Why a stream was not parked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParkingFull {
    /// [`MAX_PARKED`] streams wait already.
    #[error("this node holds too many unclaimed data-plane streams")]
    Node,
    /// [`MAX_PARKED_PER_PEER`] streams of this sender wait already.
    #[error("this sender has too many unclaimed data-plane streams here")]
    Peer,
    /// [`MAX_PARKED_PER_JOB`] streams of this job wait already.
    #[error("this job has too many unclaimed data-plane streams here")]
    Job,
}

/// Checks a hello's fields before anything is kept of it: the job id is a job id, the party ids
/// are short, and the receiver is this party. The errors do not echo the peer's text.
fn check_hello(hello: &pb::Hello, me: &str) -> Result<(), Status> {
    if !treaty_job::validate::is_job_id(&hello.job_id) {
        return Err(Status::invalid_argument(
            "the hello's job id is not a job id",
        ));
    }
    for (what, id) in [("sender", &hello.sender), ("receiver", &hello.receiver)] {
        if id.is_empty() || id.len() > MAX_HELLO_PARTY {
            return Err(Status::invalid_argument(format!(
                "the hello's {what} must be 1 to {MAX_HELLO_PARTY} bytes"
            )));
        }
    }
    if hello.receiver != me {
        return Err(Status::invalid_argument(format!(
            "this is party {me:?}, not {:?}",
            hello.receiver
        )));
    }
    Ok(())
}

/// The `PartyLink` gRPC service: accepts peers' streams and parks them in the hub.
#[derive(Debug, Clone)]
pub struct PartyLinkService {
    me: String,
    hub: Arc<LinkHub>,
    roster: Option<Arc<Roster>>,
}

impl PartyLinkService {
    /// A service for party `me` feeding `hub`. With a `roster`, a stream is accepted only from a
    /// certificate the roster pins for the party its hello names as sender; without one, from a
    /// certificate (of the deployment CA) that states `treaty://party/<sender>`.
    pub fn new(me: String, hub: Arc<LinkHub>, roster: Option<Arc<Roster>>) -> Self {
        Self { me, hub, roster }
    }

    /// The tonic server with Treaty's frame limits.
    pub fn into_server(self) -> party_link_server::PartyLinkServer<Self> {
        party_link_server::PartyLinkServer::new(self)
            .max_decoding_message_size(MAX_DATA_FRAME)
            .max_encoding_message_size(MAX_DATA_FRAME)
    }
}

#[tonic::async_trait]
impl party_link_server::PartyLink for PartyLinkService {
    type ExchangeStream = ReceiverStream<Result<pb::Frame, Status>>;

    async fn exchange(
        &self,
        request: Request<Streaming<pb::Frame>>,
    ) -> Result<Response<Self::ExchangeStream>, Status> {
        let fp = peer_cert_sha256(&request);
        let leaf = request
            .peer_certs()
            .and_then(|certs| certs.first().map(|c| c.to_vec()));
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(HELLO_TIMEOUT, inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no hello"))??
            .ok_or_else(|| Status::invalid_argument("stream ended before hello"))?;
        let Some(frame::Kind::Hello(hello)) = first.kind else {
            return Err(Status::invalid_argument("the first frame must be a hello"));
        };
        check_hello(&hello, &self.me)?;
        if let Some(der) = &leaf {
            // Before the stream is parked: a certificate that is not the sender's never reaches
            // (and so never disturbs) the session waiting for that sender.
            check_sender(der, &hello.sender, self.roster.as_deref()).map_err(|e| {
                tracing::warn!(sender = %hello.sender, error = %e, "data-plane stream refused");
                Status::permission_denied(e.to_string())
            })?;
        }
        let (out_tx, out_rx) = mpsc::channel::<pb::Frame>(OUTBOUND_QUEUE);
        let (resp_tx, resp_rx) = mpsc::channel(OUTBOUND_QUEUE);
        // Forward our outgoing frames into the response stream.
        tokio::spawn(async move {
            let mut out_rx = out_rx;
            while let Some(f) = out_rx.recv().await {
                if resp_tx.send(Ok(f)).await.is_err() {
                    break;
                }
            }
        });
        let (job, sender) = (hello.job_id, hello.sender);
        let streams = Streams {
            inbound: Box::pin(inbound),
            outbound: out_tx,
            peer_cert_sha256: fp,
        };
        if let Err(full) = self.hub.offer(job.clone(), sender.clone(), streams) {
            tracing::warn!(%job, %sender, "data-plane stream refused: {full}");
            return Err(Status::resource_exhausted(full.to_string()));
        }
        Ok(Response::new(ReceiverStream::new(resp_rx)))
    }
}

/// Checks that the client certificate `der` is the party `sender`: pinned for it by `roster`, or
/// (without a roster) stating `treaty://party/<sender>`.
///
/// # Errors
/// [`TrustError::Certificate`] naming what the certificate is instead.
pub fn check_sender(der: &[u8], sender: &str, roster: Option<&Roster>) -> Result<(), TrustError> {
    let identity = match roster {
        Some(r) => r.identify(der)?.identity.clone(),
        None => PeerIdentity::of_der(der)?,
    };
    identity.expect(Role::Party, sender)
}

/// The data-plane server builder every node uses: HTTP/2 keep-alives and, with `tls`, mutual
/// TLS (a client certificate chaining to the deployment CA is required). Add a
/// [`PartyLinkService`] and serve it on [`data_plane_incoming`].
pub fn data_plane_server(
    tls: Option<&TlsIdentity>,
) -> Result<tonic::transport::Server, tonic::transport::Error> {
    let server = tonic::transport::Server::builder()
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)));
    match tls {
        Some(tls) => server.tls_config(tls.server_config()),
        None => Ok(server),
    }
}

/// The connections accepted on a data-plane listener, with `TCP_NODELAY` and TCP keep-alive.
///
/// tonic applies the builder's TCP options only to listeners it binds itself, not to a stream of
/// accepted connections passed to `serve_with_incoming*`. Without `TCP_NODELAY` on the accepting
/// side, a round whose message is a few small frames can wait for the peer's delayed ACK
/// (40 ms on Linux): measured with `treaty bench mpc`, a 1000-element `mul_fixed` took ≈ 43 ms
/// instead of ≈ 0.5 ms.
pub fn data_plane_incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(20)))
}

/// A job's peer as the session needs it.
#[derive(Debug, Clone)]
pub struct SessionPeer {
    /// Party id.
    pub party: String,
    /// Data-plane URL.
    pub endpoint: String,
    /// Pinned SHA-256 of its TLS certificate.
    pub tls_cert_sha256: Vec<u8>,
    /// The CA that issued its certificate (from the roster): when set, dialling it trusts this CA
    /// alone, so only a certificate its own organisation issued is accepted.
    pub ca_pem: Option<String>,
}

/// What a session needs to connect.
#[derive(Debug)]
pub struct SessionSetup<'a> {
    /// The job.
    pub job_id: &'a str,
    /// This party's index in `peers`.
    pub me: PartyIndex,
    /// All parties, by index.
    pub peers: &'a [SessionPeer],
    /// TLS identity (`None` = insecure).
    pub tls: Option<&'a TlsIdentity>,
    /// Connect and receive timeout.
    pub timeout: Duration,
    /// Cancelled when the job is aborted.
    pub abort: CancellationToken,
}

struct Inbound {
    stream: FrameStream,
    /// Set once the peer sent `Abort` or broke the stream: later receives fail the same way.
    broken: Option<TransportError>,
}

/// A [`Link`] over gRPC `PartyLink` streams. It neither checks tags nor counts traffic: the
/// `Channel` over it does, as over every link.
pub struct GrpcTransport {
    me: PartyIndex,
    n: usize,
    timeout: Duration,
    abort: CancellationToken,
    /// Emptied by [`GrpcTransport::close`] (which ends the outgoing streams).
    outbound: Mutex<Vec<Option<mpsc::Sender<pb::Frame>>>>,
    inbound: Vec<Option<tokio::sync::Mutex<Inbound>>>,
}

impl std::fmt::Debug for GrpcTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcTransport")
            .field("me", &self.me)
            .field("parties", &self.n)
            .finish_non_exhaustive()
    }
}

impl GrpcTransport {
    /// Connects to every peer of the job: dials higher indices, accepts lower ones from `hub`.
    pub async fn connect(setup: SessionSetup<'_>, hub: &LinkHub) -> Result<Self, TransportError> {
        let n = setup.peers.len();
        let me_id = &setup.peers[setup.me].party;
        let mut outbound: Vec<Option<mpsc::Sender<pb::Frame>>> = (0..n).map(|_| None).collect();
        let mut inbound: Vec<Option<tokio::sync::Mutex<Inbound>>> = (0..n).map(|_| None).collect();
        let dials = (setup.me + 1..n).map(|j| dial(&setup, j));
        let accepts = (0..setup.me).map(|j| accept(&setup, hub, j));
        let (dialled, accepted) = tokio::select! {
            r = async { (futures::future::join_all(dials).await, futures::future::join_all(accepts).await) } => r,
            () = setup.abort.cancelled() => return Err(TransportError::Aborted { reason: "job aborted".into() }),
        };
        for r in dialled.into_iter().chain(accepted) {
            let (j, link) = r?;
            outbound[j] = Some(link.outbound);
            inbound[j] = Some(tokio::sync::Mutex::new(Inbound {
                stream: link.inbound,
                broken: None,
            }));
        }
        tracing::debug!(job = setup.job_id, me = %me_id, "data plane connected");
        Ok(Self {
            me: setup.me,
            n,
            timeout: setup.timeout,
            abort: setup.abort,
            outbound: Mutex::new(outbound),
            inbound,
        })
    }

    /// Tells every peer the session is aborted (best effort, does not wait).
    pub fn abort_peers(&self, reason: &str) {
        for tx in self.outbound().iter().flatten() {
            let _ = tx.try_send(pb::Frame {
                kind: Some(frame::Kind::Abort(pb::Abort {
                    reason: reason.to_string(),
                })),
            });
        }
    }

    /// Ends the session gracefully and waits, at most `within`, until every peer has ended it too.
    ///
    /// Dropping the transport cancels its streams at once (HTTP/2 `RST_STREAM`), which discards
    /// frames not yet on the wire: a party that drops it right after its last `send` can cut off
    /// its last message and fail a peer that is still reading it. `close` instead finishes
    /// sending (every queued frame, then end-of-stream) and then reads each peer's stream to its
    /// end. A peer ends its stream only when it is done too, so once `close` returns no peer still
    /// waits for a message of this party. A peer that sends more data after the end is a
    /// violation; a peer whose stream breaks is taken as gone.
    pub async fn close(&self, within: Duration) -> Result<(), TransportError> {
        self.outbound().clear();
        let deadline = tokio::time::Instant::now() + within;
        for (peer, slot) in self.inbound.iter().enumerate() {
            let Some(inbound) = slot else { continue };
            let mut inbound = inbound.lock().await;
            let next = tokio::select! {
                f = inbound.stream.next() => f,
                () = tokio::time::sleep_until(deadline) => {
                    return Err(TransportError::Aborted {
                        reason: format!(
                            "party {peer} did not end the session within {} s",
                            within.as_secs_f64()
                        ),
                    });
                }
            };
            match next {
                None
                | Some(Err(_))
                | Some(Ok(pb::Frame {
                    kind: Some(frame::Kind::Abort(_)),
                })) => {}
                Some(Ok(_)) => {
                    return Err(violation(peer, "sent data after the session ended"));
                }
            }
        }
        Ok(())
    }

    fn outbound(&self) -> MutexGuard<'_, Vec<Option<mpsc::Sender<pb::Frame>>>> {
        // Updates are a single clear: a poisoned lock still holds a consistent list.
        self.outbound.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn read_message(
        &self,
        from: PartyIndex,
        limit: usize,
        inbound: &mut Inbound,
    ) -> Result<(Tag, Vec<u8>), TransportError> {
        let mut message = Reassembly::new(from, limit);
        // One deadline for the whole message, not one per frame: a peer trickling small or
        // empty chunks cannot hold the session past it.
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let next = tokio::select! {
                f = inbound.stream.next() => f,
                () = self.abort.cancelled() => return Err(TransportError::Aborted { reason: "job aborted".into() }),
                () = tokio::time::sleep_until(deadline) => return Err(TransportError::Timeout { peer: from }),
            };
            let frame = match next {
                None => return Err(TransportError::PeerDisconnected { peer: from }),
                Some(Err(status)) => {
                    return Err(match status.code() {
                        tonic::Code::OutOfRange | tonic::Code::ResourceExhausted => {
                            violation(from, "a frame exceeded the data-plane frame limit")
                        }
                        tonic::Code::Internal if status.message().contains("decode") => {
                            violation(from, "a frame did not decode")
                        }
                        _ => TransportError::PeerDisconnected { peer: from },
                    });
                }
                Some(Ok(frame)) => frame,
            };
            if let Some(whole) = message.push(frame)? {
                return Ok(whole);
            }
        }
    }
}

fn violation(peer: PartyIndex, what: impl Into<String>) -> TransportError {
    TransportError::Violation {
        peer,
        what: what.into(),
    }
}

/// One data-plane message put back together from a peer's frames, without I/O: the transport
/// feeds it the frames as they arrive (and the fuzz target feeds it bytes). Every rule of the
/// framing is checked as each frame arrives, and a declared length reserves at most
/// 16 chunks: the buffer grows only with chunks that arrived.
#[derive(Debug)]
pub struct Reassembly {
    from: PartyIndex,
    limit: usize,
    buf: Vec<u8>,
    /// The first chunk's tag and declared length.
    first: Option<(Tag, u64)>,
}

impl Reassembly {
    /// A message from party `from` of at most `limit` bytes.
    pub fn new(from: PartyIndex, limit: usize) -> Self {
        Self {
            from,
            limit,
            buf: Vec::new(),
            first: None,
        }
    }

    /// Takes the next frame: the message and its tag once `frame` was its last chunk (the
    /// reassembly is then ready for the next message), `None` while chunks are to come.
    ///
    /// # Errors
    /// [`TransportError::Aborted`] for the peer's abort (its reason capped and escaped),
    /// [`TransportError::MessageTooLarge`] for a declared length above the limit,
    /// [`TransportError::Violation`] for any other break of the framing.
    pub fn push(&mut self, frame: pb::Frame) -> Result<Option<(Tag, Vec<u8>)>, TransportError> {
        let from = self.from;
        let chunk = match frame.kind {
            Some(frame::Kind::Chunk(c)) => c,
            Some(frame::Kind::Abort(a)) => {
                return Err(TransportError::Aborted {
                    reason: format!("party {from} aborted: {}", peer_text(&a.reason)),
                });
            }
            Some(frame::Kind::Hello(_)) | None => {
                return Err(violation(from, "unexpected frame kind mid-stream"));
            }
        };
        // The tag is two fixed-size fields (decoding allocated nothing for it); the channel
        // checks it once the message is whole.
        let tag = Tag {
            scope: ScopeId(chunk.scope),
            round: chunk.round,
        };
        let declared = chunk.total_len;
        if declared > self.limit as u64 {
            return Err(TransportError::MessageTooLarge {
                peer: from,
                len: usize::try_from(declared).unwrap_or(usize::MAX),
                max: self.limit,
            });
        }
        match self.first {
            None => {
                self.first = Some((tag, declared));
                // A peer's declared length alone reserves at most `RESERVE_AHEAD` (already
                // capped by the limit); beyond that the buffer grows with the chunks that
                // actually arrive. Without the reservation a message of 8 chunks is copied
                // again three times as the buffer doubles.
                self.buf.reserve(
                    usize::try_from(declared).map_or(RESERVE_AHEAD, |d| d.min(RESERVE_AHEAD)),
                );
            }
            Some((_, t)) if t != declared => {
                return Err(violation(from, "total length changed within a message"));
            }
            Some((t, _)) if t != tag => {
                return Err(violation(from, "tag changed within a message"));
            }
            Some(_) => {}
        }
        if chunk.payload.len() > CHUNK_SIZE
            || (self.buf.len() + chunk.payload.len()) as u64 > declared
        {
            return Err(violation(from, "chunks exceed the declared length"));
        }
        // Only an empty message is sent as an empty chunk (its only one).
        if chunk.payload.is_empty() && !chunk.last {
            return Err(violation(from, "an empty chunk before a message's end"));
        }
        self.buf.extend_from_slice(&chunk.payload);
        if chunk.last {
            if self.buf.len() as u64 != declared {
                return Err(violation(from, "message shorter than declared"));
            }
            self.first = None;
            return Ok(Some((tag, std::mem::take(&mut self.buf))));
        }
        Ok(None)
    }
}

async fn dial(
    setup: &SessionSetup<'_>,
    j: PartyIndex,
) -> Result<(PartyIndex, Streams), TransportError> {
    let peer = &setup.peers[j];
    let fail = |what: String| TransportError::Violation { peer: j, what };
    // With the peer's CA from the roster, trust that CA alone for this link.
    let pinned = match (setup.tls, &peer.ca_pem) {
        (Some(tls), Some(ca)) => Some(
            tls.with_ca(ca)
                .map_err(|e| fail(format!("the roster's CA for {}: {e}", peer.party)))?,
        ),
        _ => None,
    };
    let ep = endpoint(Dial {
        url: &peer.endpoint,
        tls: pinned.as_ref().or(setup.tls),
        server_name: &peer.party,
    })
    .map_err(|e| fail(format!("cannot dial {}: {e}", peer.endpoint)))?;
    let channel = tokio::time::timeout(setup.timeout, ep.connect())
        .await
        .map_err(|_| TransportError::Timeout { peer: j })?
        .map_err(|_| TransportError::PeerDisconnected { peer: j })?;
    let mut client = PartyLinkClient::new(channel)
        .max_decoding_message_size(MAX_DATA_FRAME)
        .max_encoding_message_size(MAX_DATA_FRAME);
    let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
    let hello = pb::Frame {
        kind: Some(frame::Kind::Hello(pb::Hello {
            job_id: setup.job_id.to_string(),
            sender: setup.peers[setup.me].party.clone(),
            receiver: peer.party.clone(),
        })),
    };
    tx.send(hello)
        .await
        .map_err(|_| TransportError::PeerDisconnected { peer: j })?;
    let response = tokio::time::timeout(setup.timeout, client.exchange(ReceiverStream::new(rx)))
        .await
        .map_err(|_| TransportError::Timeout { peer: j })?
        .map_err(|s| fail(format!("peer refused the link: {}", peer_text(s.message()))))?;
    Ok((
        j,
        Streams {
            inbound: Box::pin(response.into_inner()),
            outbound: tx,
            peer_cert_sha256: None,
        },
    ))
}

async fn accept(
    setup: &SessionSetup<'_>,
    hub: &LinkHub,
    j: PartyIndex,
) -> Result<(PartyIndex, Streams), TransportError> {
    let peer = &setup.peers[j];
    let link = hub
        .claim(setup.job_id, &peer.party, setup.timeout)
        .await
        .ok_or(TransportError::Timeout { peer: j })?;
    if setup.tls.is_some() {
        let pinned = link
            .peer_cert_sha256
            .is_some_and(|fp| fp.as_slice() == peer.tls_cert_sha256.as_slice());
        if !pinned {
            return Err(TransportError::Violation {
                peer: j,
                what: "its TLS certificate is not the one registered for it".into(),
            });
        }
    }
    Ok((j, link))
}

impl Link for GrpcTransport {
    fn me(&self) -> PartyIndex {
        self.me
    }

    fn parties(&self) -> usize {
        self.n
    }

    async fn send(&self, to: PartyIndex, tag: Tag, msg: Vec<u8>) -> Result<(), TransportError> {
        let tx = self
            .outbound()
            .get(to)
            .and_then(Option::clone)
            .ok_or(TransportError::UnknownPeer { peer: to })?;
        let total = msg.len() as u64;
        let msg = prost::bytes::Bytes::from(msg);
        let pieces: Vec<prost::bytes::Bytes> = if msg.is_empty() {
            vec![msg.clone()]
        } else {
            (0..msg.len())
                .step_by(CHUNK_SIZE)
                .map(|start| msg.slice(start..msg.len().min(start + CHUNK_SIZE)))
                .collect()
        };
        let count = pieces.len();
        let deadline = tokio::time::Instant::now() + self.timeout;
        for (i, piece) in pieces.into_iter().enumerate() {
            let frame = pb::Frame {
                kind: Some(frame::Kind::Chunk(pb::Chunk {
                    round: tag.round,
                    scope: tag.scope.0,
                    total_len: total,
                    last: i + 1 == count,
                    payload: piece,
                })),
            };
            tokio::select! {
                r = tx.send(frame) => r.map_err(|_| TransportError::PeerDisconnected { peer: to })?,
                () = self.abort.cancelled() => return Err(TransportError::Aborted { reason: "job aborted".into() }),
                () = tokio::time::sleep_until(deadline) => return Err(TransportError::Timeout { peer: to }),
            }
        }
        Ok(())
    }

    async fn recv(&self, from: PartyIndex, limit: usize) -> Result<(Tag, Vec<u8>), TransportError> {
        let slot = self
            .inbound
            .get(from)
            .and_then(Option::as_ref)
            .ok_or(TransportError::UnknownPeer { peer: from })?;
        let mut inbound = slot.lock().await;
        if let Some(e) = &inbound.broken {
            return Err(e.clone());
        }
        match self.read_message(from, limit, &mut inbound).await {
            Ok(msg) => Ok(msg),
            Err(e) => {
                inbound.broken = Some(e.clone());
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use treaty_mpc::transport::{Channel, CounterSnapshot};

    use super::*;

    /// Two parties on loopback (plaintext): party 1 serves, party 0 dials. Returns their links.
    async fn pair(job: &str) -> (Arc<GrpcTransport>, Arc<GrpcTransport>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hub = Arc::new(LinkHub::default());
        let server = data_plane_server(None)
            .unwrap()
            .add_service(PartyLinkService::new("party-1".into(), hub.clone(), None).into_server())
            .serve_with_incoming(data_plane_incoming(listener));
        tokio::spawn(server);
        let peers = [
            SessionPeer {
                party: "party-0".into(),
                endpoint: "http://127.0.0.1:1".into(),
                tls_cert_sha256: Vec::new(),
                ca_pem: None,
            },
            SessionPeer {
                party: "party-1".into(),
                endpoint: format!("http://{addr}"),
                tls_cert_sha256: Vec::new(),
                ca_pem: None,
            },
        ];
        let setup = |me| SessionSetup {
            job_id: job,
            me,
            peers: &peers,
            tls: None,
            timeout: Duration::from_secs(30),
            abort: CancellationToken::new(),
        };
        let idle = LinkHub::default();
        let (a, b) = tokio::join!(
            GrpcTransport::connect(setup(0), &idle),
            GrpcTransport::connect(setup(1), &hub)
        );
        (Arc::new(a.unwrap()), Arc::new(b.unwrap()))
    }

    const LIMIT: usize = 64 << 20;

    /// Party 1's end of a link with party 0 whose inbound frames are what the test sends on the
    /// returned sender (no network: time can be paused).
    fn over_frames(timeout: Duration) -> (GrpcTransport, mpsc::Sender<Result<pb::Frame, Status>>) {
        let (tx, rx) = mpsc::channel(1024);
        let (out, _) = mpsc::channel(OUTBOUND_QUEUE);
        let transport = GrpcTransport {
            me: 1,
            n: 2,
            timeout,
            abort: CancellationToken::new(),
            outbound: Mutex::new(vec![Some(out), None]),
            inbound: vec![
                Some(tokio::sync::Mutex::new(Inbound {
                    stream: Box::pin(ReceiverStream::new(rx)),
                    broken: None,
                })),
                None,
            ],
        };
        (transport, tx)
    }

    fn chunk(total_len: u64, last: bool, payload: Vec<u8>) -> Result<pb::Frame, Status> {
        Ok(pb::Frame {
            kind: Some(frame::Kind::Chunk(pb::Chunk {
                round: 0,
                scope: ScopeId::of("psi").0,
                total_len,
                last,
                payload: payload.into(),
            })),
        })
    }

    /// A peer that keeps a message alive with one byte a second never reaches its end: the
    /// deadline is the message's, not each frame's (with one per frame, this never returned).
    #[tokio::test(start_paused = true)]
    async fn a_trickling_peer_times_out_once_per_message() {
        let timeout = Duration::from_secs(10);
        let (link, tx) = over_frames(timeout);
        tokio::spawn(async move {
            while tx.send(chunk(1 << 20, false, vec![1])).await.is_ok() {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let started = tokio::time::Instant::now();
        let got = tokio::time::timeout(20 * timeout, link.recv(0, LIMIT)).await;
        assert_eq!(got, Ok(Err(TransportError::Timeout { peer: 0 })));
        assert!(started.elapsed() < 2 * timeout, "{:?}", started.elapsed());
    }

    /// Endless empty chunks are refused at the first one: only an empty message is an empty
    /// chunk, and it is its message's last.
    #[tokio::test]
    async fn an_empty_chunk_mid_message_is_a_violation() {
        let (link, tx) = over_frames(Duration::from_secs(30));
        for _ in 0..3 {
            tx.send(chunk(32, false, Vec::new())).await.unwrap();
        }
        // (Accepted, they kept the session waiting for more until the deadline.)
        let got = tokio::time::timeout(Duration::from_secs(20), link.recv(0, LIMIT)).await;
        assert!(
            matches!(&got, Ok(Err(TransportError::Violation { peer: 0, what })) if what.contains("empty chunk")),
            "{got:?}"
        );
        // An empty message is still one.
        let (link, tx) = over_frames(Duration::from_secs(30));
        tx.send(chunk(0, true, Vec::new())).await.unwrap();
        assert_eq!(link.recv(0, LIMIT).await.unwrap().1, Vec::<u8>::new());
    }

    /// A peer's abort reason of a megabyte (with forged log lines) reaches the job's reason cut
    /// and escaped.
    #[tokio::test]
    async fn a_peers_abort_text_is_capped_and_escaped() {
        let (link, tx) = over_frames(Duration::from_secs(30));
        let reason = "x\n".repeat(1 << 19) + "\nINFO job done";
        tx.send(Ok(pb::Frame {
            kind: Some(frame::Kind::Abort(pb::Abort { reason })),
        }))
        .await
        .unwrap();
        let Err(TransportError::Aborted { reason: got }) = link.recv(0, LIMIT).await else {
            panic!("not an abort");
        };
        assert!(
            got.len() < 2 * treaty_proto::text::MAX_PEER_TEXT,
            "{} bytes",
            got.len()
        );
        assert!(!got.contains('\n') && got.contains("bytes cut"), "{got}");
        assert!(got.starts_with("party 0 aborted: "), "{got}");
    }

    fn parked_streams() -> Streams {
        let (outbound, _) = mpsc::channel(1);
        Streams {
            inbound: Box::pin(futures::stream::empty()),
            outbound,
            peer_cert_sha256: None,
        }
    }

    fn job(i: usize) -> String {
        format!("job-{i:016x}")
    }

    /// One sender cannot take the parking space: past its share its streams are refused while
    /// another sender's are still parked, and a job holds at most one stream per possible party.
    #[test]
    fn parking_is_capped_per_peer_and_per_job() {
        let hub = LinkHub::default();
        for i in 0..MAX_PARKED_PER_PEER {
            hub.offer(job(i), "mallory".into(), parked_streams())
                .unwrap();
        }
        assert_eq!(
            hub.offer(job(MAX_PARKED_PER_PEER), "mallory".into(), parked_streams()),
            Err(ParkingFull::Peer)
        );
        // A second stream for a pair already parked replaces the first: no new place.
        hub.offer(job(0), "mallory".into(), parked_streams())
            .unwrap();
        hub.offer(job(0), "insurer".into(), parked_streams())
            .unwrap();

        let hub = LinkHub::default();
        for p in 0..MAX_PARKED_PER_JOB {
            hub.offer(job(7), format!("p{p}"), parked_streams())
                .unwrap();
        }
        assert_eq!(
            hub.offer(job(7), "one-more".into(), parked_streams()),
            Err(ParkingFull::Job)
        );
        hub.offer(job(8), "one-more".into(), parked_streams())
            .unwrap();
    }

    /// A claimed stream leaves the parking: the sender's share is free again.
    #[tokio::test]
    async fn a_claimed_stream_frees_its_parking_place() {
        let hub = LinkHub::default();
        for i in 0..MAX_PARKED_PER_PEER {
            hub.offer(job(i), "insurer".into(), parked_streams())
                .unwrap();
        }
        assert!(
            hub.claim(&job(3), "insurer", Duration::from_secs(1))
                .await
                .is_some()
        );
        hub.offer(job(999), "insurer".into(), parked_streams())
            .unwrap();
    }

    #[test]
    fn a_hello_is_checked_before_anything_is_kept() {
        let hello = |job_id: String, sender: String, receiver: &str| pb::Hello {
            job_id,
            sender,
            receiver: receiver.into(),
        };
        assert!(check_hello(&hello(job(1), "insurer".into(), "bank"), "bank").is_ok());
        let bad = [
            hello("x".repeat(1 << 20), "insurer".into(), "bank"),
            hello("../../etc".into(), "insurer".into(), "bank"),
            hello(job(1), "i".repeat(MAX_HELLO_PARTY + 1), "bank"),
            hello(job(1), String::new(), "bank"),
            hello(job(1), "insurer".into(), "hospital"),
        ];
        for h in bad {
            let status = check_hello(&h, "bank").unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            assert!(status.message().len() < 200, "{}", status.message());
        }
    }

    /// Over the network: a hello whose job id is a megabyte is refused before the stream is
    /// parked (the hub stays empty).
    #[tokio::test]
    async fn an_oversized_hello_is_refused_over_grpc() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hub = Arc::new(LinkHub::default());
        let server = data_plane_server(None)
            .unwrap()
            .add_service(PartyLinkService::new("bank".into(), hub.clone(), None).into_server())
            .serve_with_incoming(data_plane_incoming(listener));
        tokio::spawn(server);
        let mut client = PartyLinkClient::connect(format!("http://{addr}"))
            .await
            .unwrap()
            .max_encoding_message_size(MAX_DATA_FRAME);
        let (tx, rx) = mpsc::channel(1);
        tx.send(pb::Frame {
            kind: Some(frame::Kind::Hello(pb::Hello {
                job_id: "j".repeat(CHUNK_SIZE),
                sender: "insurer".into(),
                receiver: "bank".into(),
            })),
        })
        .await
        .unwrap();
        let status = client.exchange(ReceiverStream::new(rx)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(hub.slots().is_empty());
    }

    #[tokio::test]
    async fn close_delivers_the_last_message_before_the_links_end() {
        let (a, b) = pair("close").await;
        let (ca, cb) = (
            Channel::new(a.clone(), LIMIT),
            Channel::new(b.clone(), LIMIT),
        );
        // Several chunks, most still queued when the sender closes right after its last send
        // (dropping the transport there instead loses them: the receiver sees a disconnect).
        let big: Vec<u8> = (0..8 * CHUNK_SIZE + 17).map(|i| (i % 251) as u8).collect();
        let (closed, got) = tokio::join!(
            async {
                ca.child("x").send(1, big.clone()).await.unwrap();
                a.close(Duration::from_secs(30)).await
            },
            async {
                let got = cb.child("x").recv(0).await;
                b.close(Duration::from_secs(30)).await.unwrap();
                got
            }
        );
        closed.unwrap();
        assert_eq!(got.unwrap(), big);
    }

    #[tokio::test]
    async fn close_refuses_data_the_session_never_read() {
        let (a, b) = pair("unread").await;
        Channel::new(a.clone(), LIMIT)
            .send(1, vec![1, 2, 3])
            .await
            .unwrap();
        let (ra, rb) = tokio::join!(
            a.close(Duration::from_secs(30)),
            b.close(Duration::from_secs(30))
        );
        ra.unwrap();
        assert!(
            matches!(rb, Err(TransportError::Violation { peer: 0, .. })),
            "{rb:?}"
        );
    }

    #[tokio::test]
    async fn a_message_of_another_scope_is_refused_over_grpc() {
        let (fake, b) = pair("scope").await;
        let victim = Channel::new(b, LIMIT);
        let batch = victim.child("psi").child("batch");
        let tag = Tag {
            scope: ScopeId::of("barrier"),
            round: 0,
        };
        fake.send(1, tag, vec![0; 32]).await.unwrap();
        assert_eq!(
            batch.recv(0).await,
            Err(TransportError::UnexpectedScope {
                peer: 0,
                expected: "psi/batch".into(),
                got: ScopeId::of("barrier").0,
            })
        );
        assert_eq!(batch.recv(0).await, Err(TransportError::Poisoned));
    }

    #[tokio::test]
    async fn oversize_messages_are_refused_both_ways_over_grpc() {
        let (fake, b) = pair("oversize").await;
        let victim = Channel::new(b, 3 * CHUNK_SIZE);
        let ch = victim.child("psi");
        // Declares more than the limit in its first chunk: refused before anything is reserved.
        let tag = Tag {
            scope: ScopeId::of("psi"),
            round: 0,
        };
        fake.send(1, tag, vec![0; 3 * CHUNK_SIZE + 1])
            .await
            .unwrap();
        assert_eq!(
            ch.recv(0).await,
            Err(TransportError::MessageTooLarge {
                peer: 0,
                len: 3 * CHUNK_SIZE + 1,
                max: 3 * CHUNK_SIZE
            })
        );
        let sender = Channel::new(fake, 4);
        assert_eq!(
            sender.send(1, vec![0; 5]).await,
            Err(TransportError::MessageTooLarge {
                peer: 1,
                len: 5,
                max: 4
            })
        );
        assert_eq!(victim.counters().snapshot(), CounterSnapshot::default());
        assert_eq!(sender.counters().snapshot(), CounterSnapshot::default());
    }

    #[tokio::test]
    async fn a_tag_that_changes_within_a_message_is_a_violation() {
        let (fake, b) = pair("retag").await;
        let tx = fake.outbound().get(1).cloned().flatten().unwrap();
        for (i, round) in [0u32, 1].into_iter().enumerate() {
            tx.send(pb::Frame {
                kind: Some(frame::Kind::Chunk(pb::Chunk {
                    round,
                    scope: ScopeId::of("psi").0,
                    total_len: 2,
                    last: i == 1,
                    payload: vec![7].into(),
                })),
            })
            .await
            .unwrap();
        }
        let got = Channel::new(b, LIMIT).child("psi").recv(0).await;
        assert!(
            matches!(got, Err(TransportError::Violation { peer: 0, .. })),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn traffic_over_grpc_is_counted_exactly_as_payload() {
        let (a, b) = pair("count").await;
        let (ca, cb) = (Channel::new(a, LIMIT), Channel::new(b, LIMIT));
        let big = vec![5u8; 2 * CHUNK_SIZE + 3];
        let (sa, sb) = tokio::join!(
            async {
                let x = ca.child("x");
                x.send(1, big.clone()).await.unwrap();
                x.send(1, vec![]).await.unwrap();
                x.end_round();
                ca.counters().snapshot()
            },
            async {
                let x = cb.child("x");
                assert_eq!(x.recv(0).await.unwrap().len(), big.len());
                assert_eq!(x.recv(0).await.unwrap(), Vec::<u8>::new());
                x.end_round();
                cb.counters().snapshot()
            }
        );
        let n = big.len() as u64;
        assert_eq!(
            sa,
            CounterSnapshot {
                rounds: 1,
                bytes_sent: n,
                messages_sent: 2,
                ..CounterSnapshot::default()
            }
        );
        assert_eq!(
            sb,
            CounterSnapshot {
                rounds: 1,
                bytes_received: n,
                messages_received: 2,
                ..CounterSnapshot::default()
            }
        );
    }
}
