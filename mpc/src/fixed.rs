//! Two's-complement fixed point in Z_2^64.
//!
//! A real `x` is encoded as `round(x · 2^f)` where `f` is the number of fractional bits. The
//! encoder refuses values whose encoding would not fit in a signed 64-bit integer (it never wraps),
//! NaN and infinities. Rounding to nearest gives an absolute error of at most `2^-(f+1)` per value.

use crate::MpcError;

/// Default number of fractional bits.
pub const DEFAULT_FRAC_BITS: u32 = 16;
/// Largest number of fractional bits accepted (leaves 23 integer bits and the sign).
pub const MAX_FRAC_BITS: u32 = 40;

/// A fixed-point format: the number of fractional bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedPoint {
    frac_bits: u32,
}

impl Default for FixedPoint {
    fn default() -> Self {
        Self {
            frac_bits: DEFAULT_FRAC_BITS,
        }
    }
}

impl FixedPoint {
    /// A format with `frac_bits` fractional bits (0 ..= [`MAX_FRAC_BITS`]).
    pub fn new(frac_bits: u32) -> Result<Self, MpcError> {
        if frac_bits > MAX_FRAC_BITS {
            return Err(MpcError::BadFracBits {
                max: MAX_FRAC_BITS,
                got: frac_bits,
            });
        }
        Ok(Self { frac_bits })
    }

    /// Fractional bits.
    pub fn frac_bits(self) -> u32 {
        self.frac_bits
    }

    /// 2^f as f64.
    pub fn scale(self) -> f64 {
        (self.frac_bits as f64).exp2()
    }

    /// The largest magnitude accepted: values must satisfy `|x| · 2^f < 2^63`.
    pub fn limit(self) -> f64 {
        (63.0 - self.frac_bits as f64).exp2()
    }

    /// Maximum absolute rounding error of one encoded value: `2^-(f+1)`.
    pub fn resolution_error(self) -> f64 {
        (-(self.frac_bits as f64) - 1.0).exp2()
    }

    /// Encodes `x` as a signed integer `round(x · 2^f)`.
    pub fn encode_signed(self, x: f64) -> Result<i64, MpcError> {
        if !x.is_finite() {
            return Err(MpcError::NotFinite);
        }
        let scaled = (x * self.scale()).round();
        // 2^63 is exactly representable in f64; any scaled value strictly below it in magnitude
        // converts to i64 without saturation.
        if scaled.abs() >= 9_223_372_036_854_775_808.0 {
            return Err(MpcError::OutOfRange {
                limit: self.limit(),
                frac_bits: self.frac_bits,
            });
        }
        Ok(scaled as i64)
    }

    /// Encodes `x` into the ring Z_2^64 (two's complement).
    pub fn encode(self, x: f64) -> Result<u64, MpcError> {
        self.encode_signed(x).map(|v| v as u64)
    }

    /// Encodes a slice; the error names the index of the first bad value.
    pub fn encode_slice(self, xs: &[f64]) -> Result<Vec<u64>, (usize, MpcError)> {
        xs.iter()
            .enumerate()
            .map(|(i, &x)| self.encode(x).map_err(|e| (i, e)))
            .collect()
    }

    /// Decodes a ring element of Z_2^64 read as two's complement.
    pub fn decode(self, v: u64) -> f64 {
        (v as i64) as f64 / self.scale()
    }

    /// Decodes a signed 128-bit integer carrying `scale_bits` fractional bits.
    pub fn decode_wide(v: i128, scale_bits: u32) -> f64 {
        v as f64 / (scale_bits as f64).exp2()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_out_of_range_and_non_finite() {
        let fp = FixedPoint::new(16).unwrap();
        assert!(matches!(fp.encode(f64::NAN), Err(MpcError::NotFinite)));
        assert!(matches!(fp.encode(f64::INFINITY), Err(MpcError::NotFinite)));
        assert!(matches!(
            fp.encode(fp.limit()),
            Err(MpcError::OutOfRange { .. })
        ));
        assert!(matches!(
            fp.encode(-fp.limit()),
            Err(MpcError::OutOfRange { .. })
        ));
        // Just inside the range is fine.
        assert!(fp.encode(fp.limit() * 0.999).is_ok());
        assert!(FixedPoint::new(MAX_FRAC_BITS + 1).is_err());
    }

    #[test]
    fn negative_values_are_twos_complement() {
        let fp = FixedPoint::new(16).unwrap();
        assert_eq!(fp.encode(-1.0).unwrap(), (-65536i64) as u64);
        assert_eq!(fp.decode(fp.encode(-2.5).unwrap()), -2.5);
    }

    proptest! {
        #[test]
        fn round_trip_within_half_ulp(x in -1.0e9f64..1.0e9, f in 0u32..=32) {
            let fp = FixedPoint::new(f).unwrap();
            let back = fp.decode(fp.encode(x).unwrap());
            // Rounding error plus the f64 error of the scaling itself.
            let bound = fp.resolution_error() + x.abs() * f64::EPSILON;
            prop_assert!((back - x).abs() <= bound, "x={x} f={f} back={back}");
        }

        #[test]
        fn encoding_is_additive(a in -1.0e6f64..1.0e6, b in -1.0e6f64..1.0e6) {
            let fp = FixedPoint::default();
            let sum = fp.encode(a).unwrap().wrapping_add(fp.encode(b).unwrap());
            let err = (fp.decode(sum) - (a + b)).abs();
            prop_assert!(err <= 2.0 * fp.resolution_error() + 1e-9, "a={a} b={b}");
        }
    }
}
