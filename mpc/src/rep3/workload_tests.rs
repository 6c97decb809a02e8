//! The benchmark workloads: each case computes what its op says (against a plaintext model on
//! the workload's own inputs), costs exactly the documented rounds and bytes, and cases are
//! validated, enumerated and named as documented.

use super::boolean_tests::msb_bytes;
use super::test_util::{open, open_bits, run3};
use super::workload::{
    self, Case, DEFAULT_MATRICES, DEFAULT_NS, FRAC_BITS, INPUT_BOUND, Layout, Op, Output, Shape,
    X_OWNER, X_SEED, Y_OWNER, Y_SEED,
};
use crate::MpcError;
use crate::transport::CounterSnapshot;

/// The workload's inputs as signed integers (fixed point with `FRAC_BITS` fractional bits).
fn clear(len: usize, seed: u64) -> Vec<i64> {
    workload::input_values(len, seed)
        .into_iter()
        .map(|v| v as i64)
        .collect()
}

/// Runs `case` once at all three parties (fixed seeds): the opened result and each party's
/// measurement.
fn run(case: Case, salt: u64) -> (Vec<u64>, Vec<workload::Measurement>) {
    let out = run3!(Some(salt); [case] |s| {
        let inputs = case.inputs_for(s.me());
        let shared = case.share(&mut s, &inputs).await.unwrap();
        case.measure(&mut s, &shared).await.unwrap()
    });
    let measurements = out.iter().map(|(_, m)| *m).collect();
    let outputs: Vec<Output> = out.into_iter().map(|(o, _)| o).collect();
    let opened = match &outputs[0] {
        Output::Arith(_) => open(
            &outputs
                .iter()
                .map(|o| match o {
                    Output::Arith(s) => s.clone(),
                    Output::Bits(_) => panic!("parties disagree on the output kind"),
                })
                .collect::<Vec<_>>(),
        ),
        Output::Bits(_) => open_bits(
            &outputs
                .iter()
                .map(|o| match o {
                    Output::Bits(s) => s.clone(),
                    Output::Arith(_) => panic!("parties disagree on the output kind"),
                })
                .collect::<Vec<_>>(),
        ),
    };
    (opened, measurements)
}

/// `|got − want| ≤ 1` unit in the last place, as a signed fixed-point integer.
fn assert_within_one(got: &[u64], want: &[i128], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (j, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (i128::from(g as i64) - w).abs();
        assert!(err <= 1, "{what}: element {j}: got {}, want {w}", g as i64);
    }
}

#[test]
fn mul_is_the_truncated_product_of_the_inputs() {
    let n = 300;
    let case = Case::new(Op::Mul, Shape::Vector { n }).unwrap();
    let (got, _) = run(case, 1);
    let (x, y) = (clear(n, X_SEED), clear(n, Y_SEED));
    // Exact product, floored to FRAC_BITS: the truncation is within one unit of it.
    let want: Vec<i128> = x
        .iter()
        .zip(&y)
        .map(|(&a, &b)| (i128::from(a) * i128::from(b)) >> FRAC_BITS)
        .collect();
    assert_within_one(&got, &want, "mul");
}

#[test]
fn sigmoid_is_within_its_bound_of_the_clear_sigmoid() {
    let n = 300;
    let case = Case::new(Op::Sigmoid, Shape::Vector { n }).unwrap();
    let (got, _) = run(case, 1);
    let scale = (1u64 << FRAC_BITS) as f64;
    for (j, (&g, &x)) in got.iter().zip(&clear(n, X_SEED)).enumerate() {
        let want = 1.0 / (1.0 + (-(x as f64) / scale).exp());
        let err = ((g as i64) as f64 / scale - want).abs();
        assert!(err <= 1e-3, "element {j}: error {err}");
    }
}

#[test]
fn lt_is_the_signed_comparison_of_the_inputs() {
    let n = 300;
    let case = Case::new(Op::Lt, Shape::Vector { n }).unwrap();
    let (got, _) = run(case, 2);
    let (x, y) = (clear(n, X_SEED), clear(n, Y_SEED));
    for j in 0..n {
        assert_eq!(
            got[j] & 1,
            u64::from(x[j] < y[j]),
            "lt at {j}: x = {}, y = {}",
            x[j],
            y[j]
        );
        assert_eq!(got[j] >> 1, 0, "lt at {j}: only bit 0 may be set");
    }
    // Both outcomes occur, so the check is not vacuous.
    assert!(got.contains(&1) && got.contains(&0));
}

#[test]
fn matmul_is_the_truncated_matrix_product_of_the_inputs() {
    let (m, k, n) = (7, 5, 3);
    let case = Case::new(Op::Matmul, Shape::Matrix { m, k, n }).unwrap();
    let (got, _) = run(case, 3);
    let (x, y) = (clear(m * k, X_SEED), clear(k * n, Y_SEED));
    let want: Vec<i128> = (0..m * n)
        .map(|o| {
            let (i, j) = (o / n, o % n);
            (0..k)
                .map(|l| i128::from(x[i * k + l]) * i128::from(y[l * n + j]))
                .sum::<i128>()
                >> FRAC_BITS
        })
        .collect();
    assert_within_one(&got, &want, "matmul");
}

/// The operations `treaty bench mpc --ops` adds beyond the default four compute what they say
/// on the workload's inputs (within each op's documented bound, where its domain holds; the
/// protocols are data-oblivious, so inputs outside it cost the same and only give other values).
#[test]
fn the_other_ops_compute_what_they_say() {
    let n = 200;
    let scale = (1u64 << FRAC_BITS) as f64;
    let (x, y) = (clear(n, X_SEED), clear(n, Y_SEED));
    let real = |v: u64| (v as i64) as f64 / scale;
    let xf: Vec<f64> = x.iter().map(|&v| v as f64 / scale).collect();
    let yf: Vec<f64> = y.iter().map(|&v| v as f64 / scale).collect();
    let u = 1.0 / scale;
    for (salt, op) in (10..).zip([
        Op::Exp,
        Op::Log,
        Op::Reciprocal,
        Op::Div,
        Op::Sqrt,
        Op::Rsqrt,
        Op::Msb,
        Op::A2b,
        Op::Relu,
    ]) {
        let (got, _) = run(Case::new(op, Shape::Vector { n }).unwrap(), salt);
        assert_eq!(got.len(), n, "{op}");
        let mut checked = 0;
        for j in 0..n {
            let (a, b, g) = (xf[j], yf[j], got[j]);
            let ok = match op {
                Op::Exp if a <= 8.0 => (real(g) - a.exp()).abs() <= 1e-3 * a.exp() + 7e-4,
                Op::Log if a >= u => (real(g) - a.ln()).abs() <= 8.0 * u,
                Op::Reciprocal if a.abs() >= 1.0 => {
                    (real(g) - 1.0 / a).abs() <= (4.2 + a.abs()) * u / a.abs() + u
                }
                Op::Div if b.abs() >= 1.0 => (real(g) - a / b).abs() <= 0.01 * (a / b).abs() + 0.01,
                Op::Sqrt if a >= 0.0 => (real(g) - a.sqrt()).abs() <= 1e-3 * a.sqrt() + 1e-3,
                Op::Rsqrt if a >= 1.0 => (real(g) - 1.0 / a.sqrt()).abs() <= 1e-3,
                Op::Msb => g == u64::from(x[j] < 0),
                Op::A2b => g == x[j] as u64,
                Op::Relu => g == x[j].max(0) as u64,
                _ => continue,
            };
            assert!(ok, "{op} at {j}: x = {a}, y = {b}, got {}", real(g));
            checked += 1;
        }
        assert!(
            checked >= n / 4,
            "{op}: only {checked} elements in the domain"
        );
    }
}

/// `(rounds, bytes sent, messages sent)` of one party.
fn cost(t: &CounterSnapshot) -> (u64, u64, u64) {
    (t.rounds, t.bytes_sent, t.messages_sent)
}

#[test]
fn each_op_costs_what_the_costs_table_says() {
    let n = 1000u64;
    let cases = [
        // mul_fixed: 2 rounds, 8n bytes in one message per party.
        (Op::Mul, Shape::Vector { n: 1000 }, (2, 8 * n, 1)),
        // lt: 8 packed AND rounds, one message per round.
        (Op::Lt, Shape::Vector { n: 1000 }, (8, msb_bytes(n), 8)),
        // matmul_fixed: 2 rounds, 8mn bytes.
        (
            Op::Matmul,
            Shape::Matrix {
                m: 20,
                k: 30,
                n: 10,
            },
            (2, 8 * 200, 1),
        ),
    ];
    for (op, shape, want) in cases {
        let (_, measured) = run(Case::new(op, shape).unwrap(), 4);
        let got: Vec<_> = measured.iter().map(|m| cost(&m.traffic)).collect();
        assert_eq!(got, vec![want; 3], "{op} at {shape}");
    }
    assert_eq!(msb_bytes(1000), 30_160);
}

#[test]
fn the_barrier_is_one_empty_round_and_measure_does_not_count_it() {
    let out = run3!(Some(5); [] |s| {
        let before = s.channel().counters().snapshot();
        workload::barrier(&mut s).await.unwrap();
        workload::barrier(&mut s).await.unwrap();
        s.channel().counters().snapshot().since(&before)
    });
    for t in &out {
        assert_eq!(cost(t), (2, 0, 4));
        assert_eq!((t.bytes_received, t.messages_received), (0, 4));
    }
    // `measure` runs a barrier first but reports the operation alone: one round more in total.
    let case = Case::new(Op::Mul, Shape::Vector { n: 10 }).unwrap();
    let out = run3!(Some(6); [case] |s| {
        let inputs = case.inputs_for(s.me());
        let shared = case.share(&mut s, &inputs).await.unwrap();
        let before = s.channel().counters().snapshot();
        let (_, m) = case.measure(&mut s, &shared).await.unwrap();
        (s.channel().counters().snapshot().since(&before), m)
    });
    for (total, m) in out {
        assert_eq!(total.rounds, m.traffic.rounds + 1);
        assert_eq!(total.bytes_sent, m.traffic.bytes_sent);
    }
}

#[test]
fn inputs_are_deterministic_in_range_and_only_at_their_owners() {
    let a = workload::input_values(1000, X_SEED);
    assert_eq!(a, workload::input_values(1000, X_SEED));
    assert_ne!(a, workload::input_values(1000, Y_SEED));
    let limit = (INPUT_BOUND as i64) << FRAC_BITS;
    assert!(a.iter().all(|&v| (-limit..limit).contains(&(v as i64))));
    assert!(a.iter().any(|&v| (v as i64) < 0) && a.iter().any(|&v| (v as i64) > 0));

    let case = Case::new(Op::Matmul, Shape::Matrix { m: 4, k: 3, n: 2 }).unwrap();
    assert_eq!(case.input_lens(), (12, Some(6)));
    assert_eq!(case.out_len(), 8);
    let lens = |me| {
        let i = case.inputs_for(me);
        (i.x().map(<[u64]>::len), i.y().map(<[u64]>::len))
    };
    assert_eq!(lens(X_OWNER), (Some(12), None));
    assert_eq!(lens(Y_OWNER), (None, Some(6)));
    assert_eq!(lens(2), (None, None));
    assert_eq!(
        case.inputs_for(X_OWNER).x(),
        Some(&workload::input_values(12, X_SEED)[..])
    );
}

#[test]
fn cases_check_their_shapes() {
    let bad = |op, shape| {
        assert!(
            matches!(Case::new(op, shape), Err(MpcError::Workload(_))),
            "{op} at {shape} must be refused"
        );
    };
    bad(Op::Mul, Shape::Vector { n: 0 });
    bad(Op::Lt, Shape::Matrix { m: 2, k: 2, n: 2 });
    bad(Op::Matmul, Shape::Vector { n: 10 });
    bad(Op::Matmul, Shape::Matrix { m: 0, k: 2, n: 2 });
    bad(
        Op::Matmul,
        Shape::Matrix {
            m: usize::MAX,
            k: 2,
            n: 1,
        },
    );
    let msg = Case::new(Op::Matmul, Shape::Vector { n: 10 })
        .unwrap_err()
        .to_string();
    assert!(msg.contains("matmul") && msg.contains("MxKxN"), "{msg}");
}

#[test]
fn the_grid_gives_each_op_its_sizes_in_order() {
    let cases = Case::grid(Op::DEFAULT, &DEFAULT_NS, &DEFAULT_MATRICES).unwrap();
    let labels: Vec<String> = cases.iter().map(ToString::to_string).collect();
    assert_eq!(
        labels,
        [
            "mul/10000",
            "mul/100000",
            "mul/1000000",
            "lt/10000",
            "lt/100000",
            "lt/1000000",
            "matmul/1000x100x1",
            "matmul/1000x1000x1000",
            "sigmoid/10000",
            "sigmoid/100000",
            "sigmoid/1000000",
        ]
    );
    assert_eq!(cases[7].out_len(), 1_000_000);
    assert!(Case::grid(&[Op::Mul], &[0], &[]).is_err());
}

#[test]
fn ops_are_named_and_found_by_name() {
    assert_eq!(Op::DEFAULT, &[Op::Mul, Op::Lt, Op::Matmul, Op::Sigmoid]);
    assert!(Op::DEFAULT.iter().all(|op| Op::ALL.contains(op)));
    assert_eq!(Op::ALL.len(), 13);
    for &op in Op::ALL {
        assert_eq!(Op::from_name(op.name()), Some(op));
    }
    assert_eq!(Op::from_name("softmax"), None);
    assert_eq!(Op::Matmul.layout(), Layout::Matrix);
    assert_eq!(Op::Lt.layout(), Layout::Binary);
}
