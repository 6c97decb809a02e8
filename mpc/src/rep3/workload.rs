//! Benchmark workloads: which rep3 operations are measured, at which shapes, on which inputs, and
//! how one run is measured. The criterion benches (`benches/benches/rep3.rs`, all parties in one
//! process over the in-memory transport) and `treaty bench mpc` (three processes over gRPC with
//! mutual TLS) both run exactly this code, so their figures differ only by the transport.
//!
//! ```text
//!   Case { op, shape } ──inputs_for(me)──► Inputs (party 0 owns x, party 1 owns y; deterministic)
//!        │                                   │ share (1 round per input, untimed)
//!        ▼                                   ▼
//!   measure: barrier (1 round) ─► snapshot counters, start clock ─► compute ─► stop, snapshot
//!                                                                    └─► Measurement + Output
//! ```
//!
//! **Why this lives in `treaty-mpc`.** A workload is a function of the [`Rep3Session`] API and the
//! [`crate::transport::Channel`] only: no gRPC, no files, no processes, so it belongs below both of its
//! users (the `benches` crate and `treaty-party`, which drives it over `GrpcTransport`). It sits
//! next to the operations it measures, so a branch that adds a protocol adds its benchmark in the
//! same crate and the same change, and its cost can be unit-tested here over the in-memory
//! transport against the table in [`crate::rep3`]. Reading a clock is not I/O.
//!
//! **Adding an operation** (e.g. sigmoid): one line in the `ops!` list below (variant, name used
//! on the command line and in reports, input layout) and one arm in [`Case::compute`]. The CLI
//! (`--ops`), the process runner and the criterion bench pick it up from [`Op::ALL`].
//!
//! **Inputs.** Fixed-point values with [`FRAC_BITS`] fractional bits, uniform in
//! `[−INPUT_BOUND, INPUT_BOUND)`, from ChaCha20 seeded with [`X_SEED`] / [`Y_SEED`]: the same
//! inputs on every run and machine. Products stay far inside the truncation's safe range, and
//! differences inside the comparisons' (`|x − y| < 2^63`).
//!
//! **Costs** (rounds and bytes sent per party during `compute`, for `n` output elements; see the
//! table in [`crate::rep3`]): `mul` 2 rounds, `8n`; `lt` 8 rounds, `8·Σ_w ⌈wn/64⌉` for
//! `w ∈ {63, 62, 61, 29, 15, 7, 3, 1}` (≈ `30.1n`); `matmul` (m×k · k×n) 2 rounds, `8mn`.
//! [`barrier`] costs 1 round and no payload bytes and is not counted in a [`Measurement`].

use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::{Rep3Bits, Rep3Session, Rep3Share};
use crate::MpcError;
use crate::transport::{CounterSnapshot, PartyIndex, exchange};

/// Fractional bits of every fixed-point input.
pub const FRAC_BITS: u32 = 16;

/// Inputs are drawn uniformly from `[−INPUT_BOUND, INPUT_BOUND)`.
pub const INPUT_BOUND: f64 = 16.0;

/// Seed of the first input, `x` (owned by [`X_OWNER`]).
pub const X_SEED: u64 = 1;

/// Seed of the second input, `y` (owned by [`Y_OWNER`]).
pub const Y_SEED: u64 = 2;

/// The party that inputs `x`.
pub const X_OWNER: PartyIndex = 0;

/// The party that inputs `y`.
pub const Y_OWNER: PartyIndex = 1;

/// Element counts of the vector operations in the rep3 issue.
pub const DEFAULT_NS: [usize; 3] = [10_000, 100_000, 1_000_000];

/// Matrix products of the rep3 issue: `1000×100 · 100×1` and `1000×1000 · 1000×1000`.
pub const DEFAULT_MATRICES: [Shape; 2] = [
    Shape::Matrix {
        m: 1000,
        k: 100,
        n: 1,
    },
    Shape::Matrix {
        m: 1000,
        k: 1000,
        n: 1000,
    },
];

/// How an operation takes its inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// One n-vector `x` in, n elements out; takes a [`Shape::Vector`].
    Unary,
    /// Two n-vectors `x`, `y` in, n elements out; takes a [`Shape::Vector`].
    Binary,
    /// `x` (m×k) and `y` (k×n), row-major, in; m×n out; takes a [`Shape::Matrix`].
    Matrix,
}

/// Defines [`Op`], [`Op::ALL`], [`Op::name`] and [`Op::layout`] from one list, so an operation is
/// declared in one line.
macro_rules! ops {
    ($($(#[$doc:meta])* $variant:ident = $name:literal, $layout:ident;)+) => {
        /// A measured operation. Serialized as its [`Op::name`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[non_exhaustive]
        pub enum Op {
            $($(#[$doc])* #[serde(rename = $name)] $variant,)+
        }

        impl Op {
            /// Every operation, in the order reports list them.
            pub const ALL: &'static [Op] = &[$(Op::$variant),+];

            /// The name on the command line and in reports.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Op::$variant => $name,)+
                }
            }

            /// How the operation takes its inputs.
            pub const fn layout(self) -> Layout {
                match self {
                    $(Op::$variant => Layout::$layout,)+
                }
            }
        }
    };
}

ops! {
    /// Fixed-point `x·y` element-wise ([`Rep3Session::mul_fixed`]).
    Mul = "mul", Binary;
    /// `x < y` element-wise, a boolean-shared bit per element ([`Rep3Session::lt`]).
    Lt = "lt", Binary;
    /// Fixed-point matrix product ([`Rep3Session::matmul_fixed`]).
    Matmul = "matmul", Matrix;
    /// Logistic sigmoid element-wise ([`Rep3Session::sigmoid`], error ≤ 10⁻³).
    Sigmoid = "sigmoid", Unary;
    /// `e^x` element-wise ([`Rep3Session::exp`]).
    Exp = "exp", Unary;
    /// `ln x` element-wise ([`Rep3Session::log`]; inputs `≤ 0` give a defined floor value).
    Log = "log", Unary;
    /// `1/x` element-wise ([`Rep3Session::reciprocal`]).
    Reciprocal = "reciprocal", Unary;
    /// `x/y` element-wise ([`Rep3Session::div`]).
    Div = "div", Binary;
    /// `√x` element-wise ([`Rep3Session::sqrt`]; the cost does not depend on the sign).
    Sqrt = "sqrt", Unary;
    /// `1/√x` element-wise ([`Rep3Session::rsqrt`]).
    Rsqrt = "rsqrt", Unary;
    /// The sign bit, boolean-shared ([`Rep3Session::msb`]).
    Msb = "msb", Unary;
    /// Arithmetic to boolean sharing ([`Rep3Session::a2b`]).
    A2b = "a2b", Unary;
    /// `max(x, 0)` element-wise ([`Rep3Session::relu`]).
    Relu = "relu", Unary;
}

impl Op {
    /// The operations `treaty bench mpc` runs unless told otherwise: the ones the rep3 issue
    /// compares with SPU (the rest of [`Op::ALL`] by `--ops`). Every protocol is data-oblivious,
    /// so an operation's time and traffic do not depend on the input values.
    pub const DEFAULT: &'static [Op] = &[Op::Mul, Op::Lt, Op::Matmul, Op::Sigmoid];
}

impl Op {
    /// The operation called `name` (as in [`Op::name`]).
    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL.iter().copied().find(|op| op.name() == name)
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The size of a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// `n` elements per input and output.
    Vector {
        /// Elements.
        n: usize,
    },
    /// `x` is m×k, `y` is k×n, the output m×n (row-major).
    Matrix {
        /// Rows of `x` and of the output.
        m: usize,
        /// Columns of `x`, rows of `y`.
        k: usize,
        /// Columns of `y` and of the output.
        n: usize,
    },
}

impl std::fmt::Display for Shape {
    /// `n`, or `MxKxN` for a matrix product.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shape::Vector { n } => write!(f, "{n}"),
            Shape::Matrix { m, k, n } => write!(f, "{m}x{k}x{n}"),
        }
    }
}

/// One operation at one shape, checked to fit together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Case {
    op: Op,
    shape: Shape,
}

impl Case {
    /// A case; fails with [`MpcError::Workload`] if the shape does not fit the operation's
    /// [`Layout`], a size is zero, or an input length overflows `usize`.
    pub fn new(op: Op, shape: Shape) -> Result<Self, MpcError> {
        let bad = |what: String| Err(MpcError::Workload(format!("{op} at {shape}: {what}")));
        match (op.layout(), shape) {
            (Layout::Unary | Layout::Binary, Shape::Vector { n: 0 }) => bad("no elements".into()),
            (Layout::Unary | Layout::Binary, Shape::Vector { .. }) => Ok(Self { op, shape }),
            (Layout::Matrix, Shape::Matrix { m, k, n }) => {
                if m == 0 || k == 0 || n == 0 {
                    return bad("a dimension is zero".into());
                }
                if m.checked_mul(k).is_none()
                    || k.checked_mul(n).is_none()
                    || m.checked_mul(n).is_none()
                {
                    return bad("too large".into());
                }
                Ok(Self { op, shape })
            }
            (Layout::Matrix, Shape::Vector { .. }) => {
                bad("a matrix product takes a shape MxKxN".into())
            }
            (Layout::Unary | Layout::Binary, Shape::Matrix { .. }) => {
                bad("an element-wise operation takes a number of elements".into())
            }
        }
    }

    /// Every operation of `ops` at every size it takes: `ns` for element-wise operations,
    /// `matrices` for matrix products; in the order of `ops`, then of the sizes.
    pub fn grid(ops: &[Op], ns: &[usize], matrices: &[Shape]) -> Result<Vec<Case>, MpcError> {
        let mut cases = Vec::new();
        for &op in ops {
            match op.layout() {
                Layout::Unary | Layout::Binary => {
                    for &n in ns {
                        cases.push(Case::new(op, Shape::Vector { n })?);
                    }
                }
                Layout::Matrix => {
                    for &shape in matrices {
                        cases.push(Case::new(op, shape)?);
                    }
                }
            }
        }
        Ok(cases)
    }

    /// The operation.
    pub fn op(&self) -> Op {
        self.op
    }

    /// The shape.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// Output elements (`n`, or `m·n` for a matrix product).
    pub fn out_len(&self) -> usize {
        match self.shape {
            Shape::Vector { n } => n,
            // `new` checked that `m·n` does not overflow.
            Shape::Matrix { m, n, .. } => m * n,
        }
    }

    /// Lengths of `x` and (for two-input operations) `y`.
    pub fn input_lens(&self) -> (usize, Option<usize>) {
        match (self.op.layout(), self.shape) {
            (Layout::Unary, Shape::Vector { n }) => (n, None),
            (_, Shape::Vector { n }) => (n, Some(n)),
            // `new` checked that both products fit.
            (_, Shape::Matrix { m, k, n }) => (m * k, Some(k * n)),
        }
    }

    /// The inputs party `me` owns: `x` at [`X_OWNER`], `y` at [`Y_OWNER`] (if the operation takes
    /// one), nothing elsewhere. Deterministic (see the module docs).
    pub fn inputs_for(&self, me: PartyIndex) -> Inputs {
        let (lx, ly) = self.input_lens();
        Inputs {
            x: (me == X_OWNER).then(|| input_values(lx, X_SEED)),
            y: ly
                .filter(|_| me == Y_OWNER)
                .map(|l| input_values(l, Y_SEED)),
        }
    }

    /// Shares the inputs: one round per input, each sent by its owner (`16·len` bytes).
    pub async fn share(
        &self,
        s: &mut Rep3Session,
        inputs: &Inputs,
    ) -> Result<SharedInputs, MpcError> {
        let (lx, ly) = self.input_lens();
        let x = s.share_input(X_OWNER, inputs.x.as_deref(), lx).await?;
        let y = match ly {
            Some(ly) => Some(s.share_input(Y_OWNER, inputs.y.as_deref(), ly).await?),
            None => None,
        };
        Ok(SharedInputs { x, y })
    }

    /// Runs the operation on shared inputs.
    pub async fn compute(
        &self,
        s: &mut Rep3Session,
        inputs: &SharedInputs,
    ) -> Result<Output, MpcError> {
        let x = &inputs.x;
        let y = || {
            inputs.y.as_ref().ok_or(MpcError::Workload(format!(
                "{} needs a second input",
                self.op
            )))
        };
        Ok(match self.op {
            Op::Mul => Output::Arith(s.mul_fixed(x, y()?, FRAC_BITS).await?),
            Op::Lt => Output::Bits(s.lt(x, y()?).await?),
            Op::Sigmoid => Output::Arith(s.sigmoid(x, FRAC_BITS).await?),
            Op::Exp => Output::Arith(s.exp(x, FRAC_BITS).await?),
            Op::Log => Output::Arith(s.log(x, FRAC_BITS).await?),
            Op::Reciprocal => Output::Arith(s.reciprocal(x, FRAC_BITS).await?),
            Op::Div => Output::Arith(s.div(x, y()?, FRAC_BITS).await?),
            Op::Sqrt => Output::Arith(s.sqrt(x, FRAC_BITS).await?),
            Op::Rsqrt => Output::Arith(s.rsqrt(x, FRAC_BITS).await?),
            Op::Msb => Output::Bits(s.msb(x).await?),
            Op::A2b => Output::Bits(s.a2b(x).await?),
            Op::Relu => Output::Arith(s.relu(x).await?),
            Op::Matmul => {
                let Shape::Matrix { m, k, n } = self.shape else {
                    return Err(MpcError::Workload(format!(
                        "{} needs a matrix shape",
                        self.op
                    )));
                };
                Output::Arith(s.matmul_fixed(x, y()?, m, k, n, FRAC_BITS).await?)
            }
        })
    }

    /// One measured run at this party: a [`barrier`], then [`Case::compute`] between two clock
    /// reads and two counter snapshots. The time is this party's; a run's time is the slowest
    /// party's.
    pub async fn measure(
        &self,
        s: &mut Rep3Session,
        inputs: &SharedInputs,
    ) -> Result<(Output, Measurement), MpcError> {
        barrier(s).await?;
        let before = s.channel().counters().snapshot();
        let start = Instant::now();
        let out = self.compute(s, inputs).await?;
        let elapsed = start.elapsed();
        let traffic = s.channel().counters().snapshot().since(&before);
        Ok((out, Measurement { elapsed, traffic }))
    }
}

impl std::fmt::Display for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.op, self.shape)
    }
}

/// The clear inputs one party owns for a case (see [`Case::inputs_for`]).
#[derive(Clone, Default)]
pub struct Inputs {
    x: Option<Vec<u64>>,
    y: Option<Vec<u64>>,
}

impl Inputs {
    /// `x`, at its owner.
    pub fn x(&self) -> Option<&[u64]> {
        self.x.as_deref()
    }

    /// `y`, at its owner (for two-input operations).
    pub fn y(&self) -> Option<&[u64]> {
        self.y.as_deref()
    }
}

impl std::fmt::Debug for Inputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inputs")
            .field("x_len", &self.x.as_ref().map(Vec::len))
            .field("y_len", &self.y.as_ref().map(Vec::len))
            .finish_non_exhaustive()
    }
}

/// This party's shares of a case's inputs.
#[derive(Debug, Clone)]
pub struct SharedInputs {
    x: Rep3Share,
    y: Option<Rep3Share>,
}

/// This party's share of an operation's result.
#[derive(Debug, Clone)]
pub enum Output {
    /// An arithmetic sharing.
    Arith(Rep3Share),
    /// A boolean sharing.
    Bits(Rep3Bits),
}

/// What one party measured during one run of [`Case::compute`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measurement {
    /// Wall time at this party, from the end of the barrier to its result.
    pub elapsed: Duration,
    /// This party's transport counters over the same span.
    pub traffic: CounterSnapshot,
}

/// `len` fixed-point values uniform in `[−INPUT_BOUND, INPUT_BOUND)`, from ChaCha20 seeded with
/// `seed`.
pub fn input_values(len: usize, seed: u64) -> Vec<u64> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    // 2^FRAC_BITS · 2·INPUT_BOUND = 2^21 steps: draw the encoded value directly, which is exactly
    // `FixedPoint::encode` of a multiple of 2^-FRAC_BITS in the interval.
    let steps = (2.0 * INPUT_BOUND) as u64 * (1u64 << FRAC_BITS);
    let offset = (INPUT_BOUND as i64) << FRAC_BITS;
    (0..len)
        .map(|_| ((rng.next_u64() % steps) as i64 - offset) as u64)
        .collect()
}

/// A synchronisation point: every party sends an empty message to both peers and waits for
/// theirs. One round, no payload bytes, two messages per party. When it returns, both peers have
/// reached it.
pub async fn barrier(s: &mut Rep3Session) -> Result<(), MpcError> {
    if s.failed() {
        return Err(MpcError::SessionFailed);
    }
    let round = s.channel.round();
    let result = match exchange(&s.channel, |_| Vec::new()).await {
        Ok(got) => match got
            .iter()
            .position(|m| m.as_ref().is_some_and(|m| !m.is_empty()))
        {
            Some(from) => Err(MpcError::MalformedMessage {
                from,
                round,
                what: "a barrier message must be empty",
            }),
            None => Ok(()),
        },
        Err(e) => Err(e.into()),
    };
    if result.is_err() {
        s.fail();
    }
    result
}
