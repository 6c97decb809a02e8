//! `rep3`: three-party replicated secret sharing over Z_2^64 (ABY3-style; semi-honest, honest
//! majority).
//!
//! ```text
//!   x = x_0 + x_1 + x_2  (mod 2^64)
//!
//!   party 0 holds (x_0, x_1)      party i sends to party i−1 when resharing
//!   party 1 holds (x_1, x_2)          0 ◄── 1 ◄── 2 ◄── 0
//!   party 2 holds (x_2, x_0)
//! ```
//!
//! Any one party's pair is independent of `x`; any two parties hold all three components. A
//! [`Rep3Session`] agrees pairwise seeds once ([`crate::seeds::agree`], one round) and keeps two
//! ChaCha20 streams, keyed by the seed shared with the next party and with the previous one, so
//! zero-sharings `α_i = PRF(k_{i,i+1}) − PRF(k_{i−1,i})` and shared masks cost no messages. Every
//! round sends at most one message per peer (whole vectors, [`crate::ring::encode`]) and adds one
//! round to the transport's [`crate::transport::Counters`] at every party.
//!
//! | operation | rounds | bytes sent per party (n elements) |
//! | --- | --- | --- |
//! | [`Rep3Session::setup`] | 1 | 64 (32 to each peer) |
//! | [`Rep3Session::share_input`] | 1 | owner `16n`, others 0 |
//! | [`Rep3Session::reveal_all`] | 1 | `8n` |
//! | [`Rep3Session::reveal_to`] | 1 | `8n` at party `to+1`, 0 elsewhere |
//! | add, sub, neg, add/mul by public values | 0 | 0 |
//! | [`Rep3Session::mul`] | 1 | `8n` |
//! | [`Rep3Session::dot`] | 1 | 8 |
//! | [`Rep3Session::matmul`] (m×k · k×n) | 1 | `8mn` |
//! | [`Rep3Session::trunc`] | 1 | party 1 `8n`, others 0 |
//! | [`Rep3Session::mul_fixed`] | 2 | `8n` |
//! | [`Rep3Session::matmul_fixed`] | 2 | `8mn` |
//! | [`Rep3Session::share_bits_input`] | 1 | owner `16n`, others 0 |
//! | [`Rep3Session::reveal_bits_all`] | 1 | `8n` |
//! | xor, not, shifts, masks, xor with public words | 0 | 0 |
//! | [`Rep3Session::and`] (n words) | 1 | `8n` |
//! | [`Rep3Session::add_bits`] (Kogge–Stone) | 7 | `96n` |
//! | [`Rep3Session::a2b`] | 8 | `104n` |
//! | [`Rep3Session::msb`], [`Rep3Session::lt`], `gt`, `ge`, `le` | 8 | `≈ 30.125n` (241 AND bits per element, packed; exactly `8·Σ_w ⌈wn/64⌉`, `w ∈ {63, 62, 61, 29, 15, 7, 3, 1}`: `1144` at `n = 37`) |
//! | [`Rep3Session::b2a_bit`] | 2 | `16n` |
//! | [`Rep3Session::select`] | 3 | `24n` |
//! | [`Rep3Session::relu`], [`Rep3Session::max`] | 11 | msb / lt `+ 24n` (`≈ 54.1n`) |
//! | [`Rep3Session::powers_fixed`] (`m` products, max exponent `d`) | `2⌈log2 d⌉` | `8mn` |
//! | [`Rep3Session::poly_fixed`] (degree `d`, `m` products) | `2⌈log2 d⌉ + 1` | `8mn`, party 1 `+ 8n` (odd degree 7: `40n` / `48n`) |
//! | [`Rep3Session::sigmoid`] | 31 | 2 msb `+ 96n` (`≈ 156.25n`), party 1 `+ 16n` |
//! | [`Rep3Session::exp`] | 16 | `72n`, party 1 `+ 16n` |
//!
//! # Multiplication
//!
//! Party `i` computes `z_i = x_i·y_i + x_i·y_{i+1} + x_{i+1}·y_i + α_i`, a 3-out-of-3 sharing of
//! `x·y`, and sends `z_i` to party `i−1`; each party ends with `(z_i, z_{i+1})`. `z_i` is masked
//! by `PRF(k_{i,i+1})`, which its receiver `i−1` does not know. Dot and matrix products sum the
//! cross terms locally and reshare only the outputs.
//!
//! # Truncation (fixed point)
//!
//! ABY3's share truncation Π_trunc1 (Mohassel–Rindal, "ABY3", CCS 2018, §5.1.1), which applies
//! SecureML's local truncation of a 2-out-of-2 sharing (Mohassel–Zhang, S&P 2017, Theorem 1):
//! view `x` as the 2-out-of-2 sharing `(x_0, x_1 + x_2)` between parties 0 and 1; party 0 (and
//! party 2, which also holds `x_0`) computes `T_0 = ⌊x_0 / 2^d⌋`, party 1 computes
//! `T_1 = −⌊(−(x_1 + x_2)) / 2^d⌋` (shifts of the unsigned words), draws `r` from the stream it
//! shares with party 2 and sends `T_1 − r` to party 0. The result has components
//! `(T_0, T_1 − r, r)`: [`Rep3Session::trunc`] costs one round and one message.
//!
//! [`Rep3Session::mul_fixed`] and [`Rep3Session::matmul_fixed`] truncate the 3-out-of-3 product
//! directly, with no resharing round first: in round 1 party 2 sends `z_2` to party 1 (so the
//! 2-out-of-2 sharing is `(z_0, z_1 + z_2)`) and party 0 sends `T_0` to party 2; in round 2 party 1
//! sends `T_1 − r` to party 0. Two rounds, three messages of `8n` bytes (one per party), the same
//! bytes as a plain multiplication. Every message is masked by a PRF output its receiver lacks.
//!
//! **Error.** Let `v` be the exact (untruncated) value as a signed 64-bit integer — for
//! `mul_fixed` with `f` fractional bits, `v = X·Y` where `X`, `Y` are the encoded inputs, so
//! `v ≈ x·y·2^{2f}`. If `|v| < 2^ℓ` then, except with probability at most `|v| / 2^64 < 2^{ℓ−64}`
//! over the randomness of `x_0` (SecureML states the looser `2^{ℓ+1−64}`), the result `t`
//! satisfies `|t − v / 2^d| < 1`: an error below one unit in the last place (`2^−f` in real
//! terms), on top of the encoding error of the inputs. The failure event is `x_0` falling within
//! `|v|` of the wrap-around point; the result is then off by about `2^{64−d}` (garbage). Example:
//! with `f = 16` and `|x·y| < 2^8`, `ℓ = 40` and the failure probability is below `2^{−24}` per
//! element. The sharing's `x_0` component must be uniform (over `Z_2^64` or a subgroup, as for
//! every sharing this module produces); the result must fit the format (`|v / 2^d| < 2^63`).
//!
//! # Boolean sharing, A2B, comparisons
//!
//! [`Rep3Bits`] is the same replicated layout over XOR: `x = x_0 ⊕ x_1 ⊕ x_2` on 64-bit words.
//! XOR, NOT, shifts and public masks act on both components locally. AND is the multiplication
//! above with `&` for `·`, `⊕` for `+` and the XOR zero-sharing `PRF(k_{i,i+1}) ⊕ PRF(k_{i−1,i})`:
//! one round, one word per party per word.
//!
//! **A2B.** Each arithmetic component `x_k` is known to two parties, so it is locally a boolean
//! sharing whose only non-zero component is `x_k` (party `k` holds `(x_k, 0)`, party `k−1` holds
//! `(0, x_k)`, party `k+1` holds `(0, 0)`). A full-adder layer (one AND round:
//! `maj = ((x_0 ⊕ x_2) & (x_1 ⊕ x_2)) ⊕ x_2`) reduces the three summands to `s = x_0 ⊕ x_1 ⊕ x_2`
//! and `c = maj << 1`; a Kogge–Stone adder computes `s + c`: generate `g = s & c` (one round),
//! then six levels `g ← g ⊕ (p & (g << k))`, `p ← p & (p << k)` for `k = 1, 2, …, 32`, both ANDs
//! of a level batched into one message (the last level needs no `p`). Total `1 + 1 + 6 = 8`
//! rounds and `1 + 1 + 5·2 + 1 = 13` AND words (104 bytes) per element and party.
//!
//! **Packed AND.** A `PackedBits` share holds `len_bits` secret bits densely in
//! `⌈len_bits/64⌉` words per component (bit `e·w + j` is bit `j` of element `e` when the low `w`
//! bits of every word are gathered). Its AND is the word AND above on the packed words: one round,
//! `8·⌈len_bits/64⌉` bytes per party, every sent word masked by fresh PRF output. Gathering,
//! scattering and moving bits within words are linear, hence local.
//!
//! **MSB (carry-only).** `msb(x) = s_63 ⊕ c_63 ⊕ carry_63` with `(s, c)` from the full-adder
//! layer above, where `carry_63` is the carry out of bits `0..=62` of `s + c`. As `c_0 = 0`,
//! bit 0 never generates a carry, so `carry_63` is the generate of the 62 pairs
//! `(G_j, P_j) = (s_j ∧ c_j, s_j ⊕ c_j)`, `j = 1..=62`, reduced by a log-depth tree with
//! `(G_h, P_h) ∘ (G_l, P_l) = (G_h ⊕ (P_h ∧ G_l), P_h ∧ P_l)` (the lowest group's `P` is never
//! needed). Rounds and AND bits per element: full adder on bits `0..=62` (63), `G` (62), then six
//! tree levels `62 → 31 → 16 → 8 → 4 → 2 → 1` groups (`61 + 29 + 15 + 7 + 3 + 1 = 116`): 8
//! rounds, 241 bits, so `30.125` bytes per element and party for large `n` (the previous
//! whole-word circuit through A2B sent 104; SPU's less-than is 36 per party). Each round's bits of
//! all elements go into one packed AND (one message per peer per round).
//!
//! **Comparisons.** `lt(x, y) = msb(x − y)`,
//! `gt(x, y) = lt(y, x)`, `ge = ¬lt`, `le = ¬gt`; correct whenever the integer difference
//! satisfies `|x − y| < 2^63` (for instance both inputs in `[−2^62, 2^62)`), otherwise `x − y`
//! wraps and the answer is inverted. Results are boolean sharings with the bit in bit 0.
//!
//! **B2A for bits.** Each component `b_k` of a shared bit is known to two parties, so its
//! arithmetic sharing is local; `b = (b_0 ⊕ b_1) ⊕ b_2` with `u ⊕ v = u + v − 2uv`: two
//! multiplications in sequence, 2 rounds, 16 bytes per element and party. `select(b, x, y) =
//! y + B2A(b)·(x − y)` adds one multiplication; `relu(x) = B2A(¬msb(x))·x` and
//! `max(x, y) = select(lt(x, y), y, x)` cost `8 + 2 + 1 = 11` rounds and `24n` bytes on top of
//! msb / lt.
//!
//! # Polynomials and non-linear functions
//!
//! [`Rep3Session::poly_fixed`] evaluates `Σ c_i·x^i` with public coefficients: the needed powers
//! with log depth (level `L` multiplies the powers `≤ 2^L` by `x^{2^L}`, all products of a level
//! in one [`Rep3Session::mul_fixed`]; powers no coefficient needs are skipped), then the public
//! products locally at `2f` bits and one truncation. Errors grow with `|c_i|` and `|x|^i`, so
//! evaluate in a scaled variable `|t| ≤ 1`.
//!
//! [`Rep3Session::sigmoid`] is exact in its case split and accurate to `10^−3` for every input:
//! `s = msb(x)`, `|x| = x − 2·b2a(s)·x`, `in = msb(|x| − B)` (neither can wrap, so every ring
//! element is a valid input), a degree-6 minimax polynomial of `σ` on `[0, B = 7.25]` in
//! `u = 2|x|/B − 1`, and `σ = (1 − S) + IN·(1 − 2S)·(p(u) − 1)`. The two MSBs dominate its local
//! work. [`Rep3Session::exp`] is `p(x/16 + 1/2)^16` (degree-6 relative-minimax polynomial, four
//! squarings: multiplications only) on `x ∈ [−40, 8]`, with `≈ 10^−3` relative error at
//! `f = 16`. Both take 16 to 20 fractional bits; see their docs for the exact bounds and the
//! truncation failure probabilities.
//!
//! Not here yet: equality, argmax, a packed A2B / adder, other non-linear
//! functions (reciprocal, log, ...), the sync typestate split of `protocols/` vs `run/`, and
//! malicious security.

mod boolean;
mod compare;
mod convert;
mod exp;
mod mul;
mod packed;
mod poly;
mod session;
mod share;
mod sigmoid;
mod trunc;

#[cfg(test)]
mod boolean_tests;
#[cfg(test)]
mod poly_tests;
#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests;

pub use boolean::Rep3Bits;
pub use exp::{EXP_MAX, EXP_MAX_FRAC_BITS, EXP_MIN, EXP_MIN_FRAC_BITS};
pub use poly::MAX_POLY_DEGREE;

pub use session::Rep3Session;
pub use share::Rep3Share;
pub use sigmoid::{SIGMOID_BOUND, SIGMOID_MAX_FRAC_BITS, SIGMOID_MIN_FRAC_BITS};
