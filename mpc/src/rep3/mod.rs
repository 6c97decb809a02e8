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
//! ChaCha12 streams ([`crate::seeds::PrfStream`]), keyed by the seed shared with the next party and with the previous one, so
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
//! | [`Rep3Session::msb_is_zero`], [`Rep3Session::lt_eq`] | 8 | `≈ 38n` (304 AND bits per element: msb's, the last six rounds carrying a zero-test tree of `32 + 16 + … + 1`; `1440` at `n = 37`) |
//! | [`Rep3Session::b2a_bit`] | 2 | `8n` (one message per party) |
//! | [`Rep3Session::select`] | 3 | `16n` |
//! | [`Rep3Session::relu`], [`Rep3Session::max`] | 11 | msb / lt `+ 16n` (`≈ 46.1n`) |
//! | [`Rep3Session::eq`], [`Rep3Session::is_zero`] | 7 | `≈ 10.54n`: party `i` sends `8·c_{i−1}` in round 1 (`c_k = ⌈(n − k)/3⌉` elements have role `k`), then `8·Σ_h ⌈hn/64⌉`, `h ∈ {32, 16, 8, 4, 2, 1}` (63 AND bits per element): `416, 424, 416` at `n = 37` |
//! | [`Rep3Session::argmax_rows`], [`Rep3Session::argmax`] (`m` rows of `n`) | `11·⌈log2 n⌉` | `≈ 50.1mn`: per level with `t = m·⌊c/2⌋` pairs, msb(`t`) `+ 16t`, `+ 8t` after the first level (`1456` for `m = 3`, `n = 10`) |
//! | [`Rep3Session::argmax_rows_one_hot`] | `11·⌈log2 n⌉` | as argmax, with `8·m·min(2·⌊c/2⌋·2^l, n)` for the one-hot entries at level `l ≥ 1` instead of `8t` (`≈ 8mn` more per level; `1984` for `m = 3`, `n = 10`) |
//! | [`Rep3Session::powers_fixed`] (`m` products, max exponent `d`) | `2⌈log2 d⌉` | `8mn` |
//! | [`Rep3Session::poly_fixed`] (degree `d`, `m` products) | `2⌈log2 d⌉ + 1` | `8mn`, party 1 `+ 8n` (odd degree 7: `40n` / `48n`) |
//! | [`Rep3Session::b2a`] (whole words) | 9 | `112n` (party 1: `104n`) |
//! | [`Rep3Session::normalize`] (`f = 16`) | 24 | `≈ 370n` (party 1: `354n`; A2B `104n`, leading one `≈ 40.1n`, alignment `2n`, B2A of 2 words) |
//! | [`Rep3Session::reciprocal`] (`t` Newton steps; `f = 16`: `t = 3`) | `28 + 4t` = 40 | `≈ 456n` (party 1: `448n`) |
//! | [`Rep3Session::div`] (`f = 16`) | `32 + 4t` = 44 | `≈ 866n` (party 1: `850n`) |
//! | [`Rep3Session::rsqrt`] (`f = 16`: `t = 3`) | `26 + 4t` = 38 | `≈ 570n` (party 1: `554n`) |
//! | [`Rep3Session::sqrt`] (`f = 16`) | `28 + 4t` = 40 | `≈ 578n` (party 1: `562n`) |
//! | [`Rep3Session::log`] (degree 7) | 31 | `≈ 418n` (party 1: `410n`) |
//! | [`Rep3Session::sigmoid`] | 31 | 2 msb `+ 64n` (`≈ 124.25n`), party 1 `+ 16n` |
//! | [`Rep3Session::sigmoid_precise`] | 31 | msb(`n`) + msb(`4n`) `+ 208n` (`≈ 358.6n`), party 1 `+ 64n` |
//! | [`Rep3Session::exp`] | 16 | `72n`, party 1 `+ 16n` |
//! | [`Rep3Session::accuracy`] (`n` scores) | 12 (11 for `n` a power of two `≤ 2^f`) | msb `+ 8n + 8` (`≈ 38.1n`; `1448` at `n = 37`) |
//! | [`Rep3Session::auc`] (`n` scores, `B = max(1, ⌈n(n−1)/2^21⌉)` blocks, `S = max(1, ⌈f/8⌉)` digits) | `10B + 11S` (`f = 16`: `10B + 22`, 32 for `n ≤ 1448`) | `≈ 27n²` (54 per unordered pair: `lt_eq + 16` per pair, `+ 16`, division `19528` at `f = 16`; `29896` at `n = 20`) |
//! | [`workload::barrier`] | 1 | 0 (an empty message to each peer) |
//!
//! [`workload`] defines the benchmarked cases (operation, shape, deterministic inputs, one
//! measured run) that the criterion benches and `treaty bench mpc` both run.
//!
//! # Multiplication
//!
//! Party `i` computes `z_i = x_i·y_i + x_i·y_{i+1} + x_{i+1}·y_i + α_i`, a 3-out-of-3 sharing of
//! `x·y`, and sends `z_i` to party `i−1`; each party ends with `(z_i, z_{i+1})`. `z_i` is masked
//! by `PRF(k_{i,i+1})`, which its receiver `i−1` does not know. Dot and matrix products sum the
//! cross terms locally and reshare only the outputs. The local part of a matrix product,
//! `X_i·(Y_i + Y_{i+1}) + X_{i+1}·Y_i`, is one fused product `[X_i | X_{i+1}] · [Y_i + Y_{i+1};
//! Y_i]` (inner dimension `2k`), cache-blocked, on rayon, with an 8×16 register tile compiled for
//! AVX-512, AVX2 and the baseline and chosen at run time (`multiversion`); exact, as all
//! arithmetic wraps.
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
//! **Packed AND.** ANDs of a few bits per element are batched bit-sliced: the elements are taken
//! 64 at a time and each block is stored as bit planes (plane `j` holds bit `j` of the block's
//! 64 elements), transposed once from the words. The AND is the word AND above on the plane
//! words, one round; only the bits of present elements are sent, the last (partial) block's
//! planes packed back to back, so an AND of `w` bits per element costs `8·⌈w·n/64⌉` bytes per
//! party, every sent word masked by fresh PRF output. Selecting, moving and XORing bit positions
//! is choosing plane words, local.
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
//! **Sign and zero test together.** `x = s + c (mod 2^64)` is zero iff `s ⊕ c = (s ∨ c) << 1`
//! (with every sum bit zero the carry into bit `j` is `s_j ⊕ c_j` and the carry out `s_j ∨ c_j`;
//! conversely by induction from `carry_0 = 0`). After the msb circuit's second round both sides
//! are local bit by bit (`(s ⊕ c)_j = P_j`, `(s ∨ c)_j = P_j ⊕ G_j`), so
//! [`Rep3Session::msb_is_zero`] reduces the 64 XNORs with an AND tree whose six levels ride in the
//! six rounds of the carry tree: `[x < 0]` and `[x = 0]` in 8 rounds and 304 AND bits per element,
//! where [`Rep3Session::lt`] and [`Rep3Session::eq`] take 15 rounds and 304 bits plus the eq input
//! round, and two `lt` 482 bits. [`Rep3Session::lt_eq`] is the three-way comparison on `x − y`.
//!
//! **B2A for bits.** Party 0 knows `c = b_0 ⊕ b_1`, parties 1 and 2 know `b_2`, and
//! `b = c ⊕ b_2 = c·(1 − 2b_2) + b_2`. Party 0 sends `c − r` to party 1 (`r` from `k_{2,0}`),
//! which makes `b = y_1 + y_2` an additive sharing between parties 1 and 2; they swap `y_1 − σ`
//! and `y_2 − ρ` (`σ` from `k_{0,1}`, `ρ` from `k_{2,0}`, so each message is masked by a
//! stream its receiver lacks), ending with the replicated sharing `(ρ, σ, y_1 + y_2 − ρ − σ)`:
//! 2 rounds, one message of 8 bytes per element at each party, and no local products (composing
//! the three components with two multiplications costs twice the bytes).
//! `select(b, x, y) = y + B2A(b)·(x − y)` adds one multiplication; `relu(x) = B2A(¬msb(x))·x`
//! and `max(x, y) = select(lt(x, y), y, x)` cost `8 + 2 + 1 = 11` rounds and `16n` bytes on top
//! of msb / lt.
//!
//! **Equality.** `eq(x, y) = is_zero(x − y)`, exact for all words. Write `d = x` for the input
//! of [`Rep3Session::is_zero`]. Element `j` gets the public role `k = j mod 3`; then `d = 0` iff
//! `d_k = v` with `v = −(d_{k+1} + d_{k+2})`. Party `k+1` holds `d_{k+1}` and `d_{k+2}`, so it
//! knows `v`; parties `k` and `k−1` both hold `d_k`. Round 1 builds a boolean sharing of
//! `d_k ⊕ v` with components `(d_k, r, v ⊕ r)` at positions `(k, k+1, k+2)`: `d_k` is already
//! held by its two holders, `r` is drawn from the stream `k_{k,k+1}` by both its holders, and
//! party `k+1` sends `v ⊕ r` to party `k+2`. Rotating the role spreads this round over all three
//! parties (each sends a third of `8n` bytes, to its next party). Rounds 2–7: `w = ¬(d_k ⊕ v)`
//! is all ones iff `d = 0`, and six packed AND levels `w ← (w ∧ (w >> h)) mod 2^h`,
//! `h = 32, 16, 8, 4, 2, 1` (63 AND bits per element, one message per round) leave the answer
//! in bit 0. The AND tree over the XNOR of the bits is the textbook equality circuit; the input
//! step, which compares one component with the sum of the other two, replaces the adder (8
//! rounds, 104 bytes per element) that an A2B of `d` would need.
//!
//! *What each party sees.* For an element of role `k`: party `k+2` receives `v ⊕ r`, where `r`
//! is fresh output of the stream keyed by `k_{k,k+1}`, a key party `k+2` does not hold: a
//! one-time pad, uniform and independent of its view. Parties `k` and `k+1` receive nothing for
//! that element in round 1; party `k+1` learns nothing new, since `v` is a function of its own
//! share. Each party's pair of the new sharing is thus `(d_k, r)` (its own component and a PRF
//! word), `(r, v ⊕ r)` (a PRF word and a value it computed itself) or `(v ⊕ r, d_k)` (a pad and
//! its own component). The sharing is not uniformly random (`d_k` is reused), which the AND
//! protocol does not need: every word it sends is masked by fresh zero-sharing output the
//! receiver lacks, and its output components carry fresh masks, so the messages of rounds 2–7
//! are uniform and the output bit sharing is a fresh one. Nothing is revealed.
//!
//! **Argmax.** [`Rep3Session::argmax_rows`] runs a tournament over each row of a row-major
//! `m×n` matrix (a vector is one row): the candidates are paired `(2i, 2i+1)`, an odd last one
//! passes through, for `⌈log2 n⌉` levels. A level is one [`Rep3Session::lt`] over the pairs of
//! all rows, one [`Rep3Session::b2a_bit`], and one batched multiplication selecting
//! `left + b·(right − left)` for value and index (at the first level the indices are public and
//! `2i + b` is local). The right candidate wins only if strictly larger, so ties go to the lowest
//! index, as in `numpy.argmax`. Same input range as `lt`. [`Rep3Session::argmax_rows_one_hot`]
//! tracks the one-hot vector instead of the index (candidate `i` at level `l` owns entries
//! `[i·2^l, (i+1)·2^l)` of its row, and a select multiplies its bit into each of them), derives
//! the index locally as `Σ_j j·onehot_j`, and costs no extra round but about `8mn` bytes more per
//! level; ask for it only when the one-hot is needed.
//!
//! **B2A for words.** ABY3's bit composition (§5.3): the result's components `x_1` (from
//! `k_{0,1}`) and `x_2` (from `k_{1,2}`) are drawn by their holders, so `−x_1` and `−x_2` are
//! locally boolean sharings with one non-zero component; a full-adder layer (the one of A2B) and
//! the Kogge–Stone adder compute `x_0 = x − x_1 − x_2`, which is opened to its two holders
//! (parties 0 and 2 send each other the component the other lacks). Exact; 9 rounds.
//!
//! # Normalisation, reciprocal, division, square roots
//!
//! **Normalisation** (Catrina–Saxena, FC 2010, §3.4; as in SPU's `highestOneBit`): A2B, then the
//! leading one of every element by a log-depth prefix-OR from the top (6 rounds, the ANDs of a
//! level packed: 321 bits per element), whose one-hot word `h` (bit `p`) drives everything else:
//! a public table of `p` (scale factor `2^{f−1−p}` split into an exact left-shift word and
//! right-shift words, the exponent `p + 1 − f`, …) is a GF(2)-linear map of `h` (a bit permutation
//! or XOR of table rows), so local; the mantissa `x·2^{f−1−p}` can also be formed in the boolean
//! domain as `f` GF(2) inner products of `h` with shifted copies of `x` (one round, `f` bits,
//! exact, for every `p`). One batched B2A turns the words into arithmetic sharings.
//!
//! **Reciprocal.** `|x|` is avoided: the leading one of the ones' complement `x ⊕ s…s` is that
//! of `|x|` (or one less when `|x|` is a power of two, which makes the mantissa exactly 1), and
//! the sign enters the scale words (`−2^j` is the bits from `j` up: one round of ANDs with the
//! sign). The mantissa is `m = x·σ2^{f−1−p} ∈ [0.5, 1]` (one product, magnitude below `2^{2f+1}`
//! for every `p ≤ 2f`), then Newton–Raphson `y ← y(2 − m·y)` from SPU's linear guess
//! `2.9142 − 2m` (3 iterations at `10 ≤ f ≤ 20`, the supported range ending where truncation failures become
//! frequent), then the secret rescaling `y·U + trunc(y·D)`:
//! an exact left shift for `|x| < 1` (where `1/x` has the most bits) and a truncated right
//! shift otherwise. Error `≤ 4.2·2^{−f}·|1/x| + 2^{−f}` over the whole range. **Division** folds
//! `x` into the last Newton step (before the rescaling) and covers right shifts up to `63 − f`
//! bits. **Square roots** normalise to `m ∈ [0.25, 1)` with an even exponent (the parity only
//! picks one of two alignment targets), run Newton `y ← y(3 − m·y²)/2` (one multiplication and
//! one fused multiply-truncate per step) and rescale by `2^{∓k}`. **Logarithm**: `ln x = e·ln 2 +
//! ln m` with `e·ln 2` a table of the one-hot word (rounded once) and `ln m` a degree-7
//! near-minimax polynomial in `4m − 3` ([`Rep3Session::poly_fixed`]); error `≤ 7.9·2^{−f}`.
//!
//! Compared with SPU (`div_goldschmidt`: `msb` + `mux` for `|x|`, `prefix_or`, the factor
//! `bitrev(·, 0, 2f)` — so `|x| < 2^f` — applied by truncated products, 2 Goldschmidt iterations
//! by default, `≈ 14` bits) this skips `msb` and `mux`, runs Newton until the error is about
//! `2·2^{−f}`, rescales small `|x|` exactly, and divides by any representable `y`. CrypTen needs no
//! bit decomposition (`1/x` from the guess `3·exp(1 − 2x) + 0.003` and 10 Newton steps by default,
//! `sign()` for negative inputs; `inv_sqrt` from an `exp` guess; `sqrt = x·inv_sqrt(x)`) but
//! converges only on a bounded domain; here the bounds hold for every representable input, at
//! the price of an A2B and one B2A of two to five words.
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
//! # Classifier metrics
//!
//! [`Rep3Session::accuracy`] and [`Rep3Session::auc`] evaluate a binary classifier on secret
//! scores and secret 0/1 labels and return only the metric, as a sharing. The accuracy at a
//! public threshold is one msb per element, a bit injection, and the count
//! `n − Σ pred − Σ y + 2·Σ pred·y` as one dot product scaled by `round(2^{f+k}/n)` and truncated
//! once: within `2^−f` of the true fraction for `n² ≤ 2^{41−f}`. The ROC AUC (Mann–Whitney,
//! ties one half) uses `2U = P·N + Σ_{i<j} (2[s_i < s_j] + [s_i = s_j] − 1)(y_j − y_i)`: one
//! [`Rep3Session::msb_is_zero`] per unordered pair (in blocks of [`AUC_BLOCK_PAIRS`] for bounded
//! memory), a bit injection, local cross terms summed over all blocks and reshared once with
//! `P·N`, then an exact long division in radix `2^8` (comparisons of `2^8·rem` with multiples of
//! the denominator, no truncation): the result is `⌊AUC·2^f⌋` exactly; an undefined AUC (one
//! class) gives `½`.
//!
//! Not here yet: a packed A2B / adder (whole-word B2A and A2B dominate the local cost of the
//! functions above), the sync typestate split of `protocols/` vs `run/`, and malicious security.

mod argmax;
mod boolean;
mod compare;
mod convert;
mod equality;
mod exp;
mod gemm;
mod log;
mod metrics;
mod mul;
mod normalize;
mod packed;
mod poly;
mod recip;
mod session;
mod share;
mod sigmoid;
mod trunc;
pub mod workload;

#[cfg(test)]
mod boolean_tests;
#[cfg(test)]
mod cmp_tests;
#[cfg(test)]
mod metrics_tests;
#[cfg(test)]
mod poly_tests;
#[cfg(test)]
mod recip_tests;
#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod workload_tests;

pub use argmax::Rep3Argmax;
pub use boolean::Rep3Bits;
pub use exp::{EXP_MAX, EXP_MAX_FRAC_BITS, EXP_MIN, EXP_MIN_FRAC_BITS};
pub use metrics::{ACCURACY_MAX_LEN, AUC_BLOCK_PAIRS, AUC_MAX_LEN};
pub use normalize::Normalized;
pub use poly::MAX_POLY_DEGREE;
pub use recip::{NONLINEAR_MAX_FRAC_BITS, NONLINEAR_MIN_FRAC_BITS};

pub use session::Rep3Session;
pub use share::Rep3Share;
pub use sigmoid::{SIGMOID_BOUND, SIGMOID_MAX_FRAC_BITS, SIGMOID_MIN_FRAC_BITS, SIGMOID_PIECES};
