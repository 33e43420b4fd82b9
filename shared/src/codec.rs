//! Bit-exact transport of `f32` vectors: little-endian bytes, base64 (standard alphabet).
//!
//! JSON numbers would round-trip through `f64` text; bytes make the browser's copy of an item
//! table identical to the server's, which is what lets the two rankings be compared exactly.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Encodes floats as base64 of their little-endian bytes.
pub fn encode_f32(values: &[f32]) -> String {
    let mut bytes = Vec::with_capacity(values.len() * 4);
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    STANDARD.encode(bytes)
}

/// Decodes what [`encode_f32`] produced.
pub fn decode_f32(text: &str) -> Result<Vec<f32>, String> {
    let bytes = STANDARD
        .decode(text)
        .map_err(|e| format!("invalid base64 float data: {e}"))?;
    if !bytes.len().is_multiple_of(4) {
        return Err(format!(
            "float data has {} bytes, not a multiple of 4",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Encodes floats as base64 of their IEEE half-precision little-endian bytes (half the size,
/// about three significant digits): the compact form of item tables sent to the browser.
pub fn encode_f16(values: &[f32]) -> String {
    let mut bytes = Vec::with_capacity(values.len() * 2);
    for v in values {
        bytes.extend_from_slice(&half::f16::from_f32(*v).to_le_bytes());
    }
    STANDARD.encode(bytes)
}

/// Decodes what [`encode_f16`] produced, widened to `f32`.
pub fn decode_f16(text: &str) -> Result<Vec<f32>, String> {
    let bytes = STANDARD
        .decode(text)
        .map_err(|e| format!("invalid base64 half data: {e}"))?;
    if !bytes.len().is_multiple_of(2) {
        return Err(format!("half data has {} bytes, not even", bytes.len()));
    }
    Ok(bytes
        .chunks_exact(2)
        .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_bit_exact() {
        let values = [
            0.0,
            -0.0,
            1.0e-38,
            f32::MIN_POSITIVE,
            -1.234_567_9,
            -2.5e30,
            f32::MAX,
        ];
        let back = decode_f32(&encode_f32(&values)).unwrap();
        let bits: Vec<u32> = values.iter().map(|v| v.to_bits()).collect();
        let back_bits: Vec<u32> = back.iter().map(|v| v.to_bits()).collect();
        assert_eq!(bits, back_bits);
    }

    #[test]
    fn halves_round_trip_within_half_precision() {
        let values = [0.0f32, 1.0, -2.5, 0.333_333, 1234.5, -6.1e-5];
        let back = decode_f16(&encode_f16(&values)).unwrap();
        for (a, b) in values.iter().zip(&back) {
            assert!((a - b).abs() <= a.abs() * 1e-3 + 1e-7, "{a} -> {b}");
        }
        assert_eq!(back[1], 1.0, "exactly representable values are exact");
        assert!(decode_f16(&STANDARD.encode([1u8, 2, 3])).is_err());
    }

    #[test]
    fn rejects_bad_input() {
        assert!(decode_f32("not base64!").is_err());
        assert!(
            decode_f32(&STANDARD.encode([1u8, 2, 3]))
                .unwrap_err()
                .contains("multiple of 4")
        );
    }
}

/// `#[serde(with = "shared::codec::b64")]` for `Vec<f32>` fields: base64 of little-endian bytes.
pub mod b64 {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises as [`super::encode_f32`] text.
    pub fn serialize<S: Serializer>(values: &[f32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::encode_f32(values))
    }

    /// Deserialises [`super::encode_f32`] text.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
        let text = String::deserialize(d)?;
        super::decode_f32(&text).map_err(serde::de::Error::custom)
    }
}
