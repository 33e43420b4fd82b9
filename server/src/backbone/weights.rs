//! Pretrained weight files: safetensors (Hugging Face) and PyTorch checkpoints (`.pt`/`.pth`,
//! including the legacy pre-zip format, read with `pytorch-reader`). A [`WeightFile`] hands out
//! tensors by name with their expected shape and remembers which it handed out, so a loader can
//! refuse a file with tensors it did not expect (a different architecture) instead of silently
//! ignoring them. Every error names the file and the tensor.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use burn::module::Param;
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::prelude::*;

/// One tensor as loaded: row-major f32 values and the shape.
struct Raw {
    shape: Vec<usize>,
    values: Vec<f32>,
}

/// The tensors of one weight file, by name.
pub struct WeightFile {
    path: PathBuf,
    tensors: BTreeMap<String, Raw>,
    taken: BTreeSet<String>,
    /// Serve seeded random values for any name instead (see [`WeightFile::synthetic`]).
    synthetic: Option<u64>,
}

fn to_f32(bytes: &[u8], dtype: &str, name: &str, path: &Path) -> Result<Vec<f32>> {
    let chunks = |n: usize| bytes.chunks_exact(n);
    Ok(match dtype {
        "F32" => chunks(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        "F16" => chunks(2)
            .map(|b| half_to_f32(u16::from_le_bytes([b[0], b[1]])))
            .collect(),
        "BF16" => chunks(2)
            .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
            .collect(),
        "F64" => chunks(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect(),
        other => {
            return Err(Error::format(
                path,
                format!("tensor {name} has dtype {other}; only float tensors are weights"),
            ));
        }
    })
}

fn synthetic_values(seed: u64, name: &str, shape: &[usize]) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let n = shape.iter().product();
    let lower = name.to_ascii_lowercase();
    if lower.contains("norm") && lower.ends_with(".weight") {
        return vec![1.0; n];
    }
    if lower.ends_with("running_var") {
        return vec![1.0; n];
    }
    let mut h = seed;
    for b in name.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(h);
    (0..n).map(|_| rng.random_range(-0.05f32..0.05)).collect()
}

/// IEEE half to f32 (subnormals included).
fn half_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // subnormal: renormalise
            let mut e = 127 - 15 + 1;
            let mut f = f;
            while f & 0x400 == 0 {
                f <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((f & 0x3ff) << 13)
        }
        (0x1f, f) => sign | (0xff << 23) | (f << 13),
        (e, f) => sign | ((e + 127 - 15) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

impl WeightFile {
    /// Opens a `.safetensors` file, or a PyTorch checkpoint (any other extension). Integer
    /// tensors (e.g. BERT's `position_ids` buffer, BatchNorm's `num_batches_tracked`) are
    /// skipped: they are bookkeeping, not weights.
    pub fn open(path: &Path) -> Result<Self> {
        let is_safetensors = path.extension().is_some_and(|e| e == "safetensors");
        let mut tensors = BTreeMap::new();
        if is_safetensors {
            let bytes = std::fs::read(path).at(path)?;
            let st = safetensors::SafeTensors::deserialize(&bytes)
                .map_err(|e| Error::format(path, format!("not a safetensors file: {e}")))?;
            for (name, view) in st.iter() {
                let dtype = format!("{:?}", view.dtype());
                if !dtype.starts_with('F') && dtype != "BF16" {
                    continue;
                }
                let values = to_f32(view.data(), &dtype, name, path)?;
                tensors.insert(
                    name.to_string(),
                    Raw {
                        shape: view.shape().to_vec(),
                        values,
                    },
                );
            }
        } else {
            let reader = pytorch_reader::PytorchReader::new(path)
                .map_err(|e| Error::format(path, format!("not a PyTorch checkpoint: {e}")))?;
            for (name, t) in reader.tensors() {
                use pytorch_reader::DType;
                let dtype = match t.dtype() {
                    DType::F32 => "F32",
                    DType::F16 => "F16",
                    DType::BF16 => "BF16",
                    DType::F64 => "F64",
                    _ => continue,
                };
                let bytes = t
                    .read()
                    .map_err(|e| Error::format(path, format!("reading tensor {name}: {e}")))?;
                let values = to_f32(&bytes, dtype, name, path)?;
                tensors.insert(
                    name.clone(),
                    Raw {
                        shape: t.shape().to_vec(),
                        values,
                    },
                );
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            tensors,
            taken: BTreeSet::new(),
            synthetic: None,
        })
    }

    /// A stand-in that answers every request with seeded random values (uniform ±0.05; ones
    /// for LayerNorm scales), so a tower can be built at full size without its weights: for
    /// parameter counts and speed benchmarks, never for results.
    pub fn synthetic(seed: u64) -> Self {
        Self {
            path: PathBuf::from("<synthetic>"),
            tensors: BTreeMap::new(),
            taken: BTreeSet::new(),
            synthetic: Some(seed),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file holds a tensor of that name.
    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The shape of a tensor, if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|r| r.shape.as_slice())
    }

    /// The raw values of `name`, checked against `shape`.
    pub fn values(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        if let Some(seed) = self.synthetic {
            return Ok(synthetic_values(seed, name, shape));
        }
        let raw = self.tensors.get(name).ok_or_else(|| {
            Error::format(
                &self.path,
                format!("missing tensor {name} (is this the right architecture?)"),
            )
        })?;
        if raw.shape != shape {
            return Err(Error::format(
                &self.path,
                format!(
                    "tensor {name} has shape {:?}, expected {shape:?}",
                    raw.shape
                ),
            ));
        }
        self.taken.insert(name.to_string());
        Ok(raw.values.clone())
    }

    /// Tensor `name` of shape `shape` on `device`.
    pub fn tensor<const D: usize>(
        &mut self,
        name: &str,
        shape: [usize; D],
        device: &Device,
    ) -> Result<Tensor<D>> {
        let values = self.values(name, &shape)?;
        Ok(Tensor::from_data(TensorData::new(values, shape), device))
    }

    /// A frozen parameter from tensor `name`.
    pub fn param<const D: usize>(
        &mut self,
        name: &str,
        shape: [usize; D],
        device: &Device,
    ) -> Result<Param<Tensor<D>>> {
        Ok(Param::from_tensor(self.tensor(name, shape, device)?).set_require_grad(false))
    }

    /// A frozen linear layer from PyTorch's `{prefix}.weight` (`[out, in]`, transposed here to
    /// burn's `[in, out]`) and, if `bias`, `{prefix}.bias`.
    pub fn linear(
        &mut self,
        prefix: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
        device: &Device,
    ) -> Result<Linear> {
        // transposed on the host, so the weight is a contiguous [in, out] matrix rather than a
        // strided view (which the CPU backend copies on every product)
        let rows = self.values(&format!("{prefix}.weight"), &[d_out, d_in])?;
        let mut values = vec![0.0f32; rows.len()];
        for (o, row) in rows.chunks_exact(d_in).enumerate() {
            for (i, &v) in row.iter().enumerate() {
                values[i * d_out + o] = v;
            }
        }
        let weight = Tensor::from_data(TensorData::new(values, [d_in, d_out]), device);
        let bias = if bias {
            Some(self.param(&format!("{prefix}.bias"), [d_out], device)?)
        } else {
            None
        };
        Ok(Linear {
            weight: Param::from_tensor(weight).set_require_grad(false),
            bias,
        })
    }

    /// A frozen LayerNorm from `{prefix}.weight` and `{prefix}.bias`.
    pub fn layer_norm(
        &mut self,
        prefix: &str,
        d: usize,
        eps: f64,
        device: &Device,
    ) -> Result<LayerNorm> {
        let mut ln = LayerNormConfig::new(d).with_epsilon(eps).init(device);
        ln.gamma = self.param(&format!("{prefix}.weight"), [d], device)?;
        ln.beta = Some(self.param(&format!("{prefix}.bias"), [d], device)?);
        Ok(ln)
    }

    /// Fails when the file holds weights the loader never asked for, other than those for
    /// which `ignored` returns true (e.g. a classifier that is deliberately dropped).
    pub fn finish(&self, ignored: impl Fn(&str) -> bool) -> Result<()> {
        if self.synthetic.is_some() {
            return Ok(());
        }
        let unused: Vec<&String> = self
            .tensors
            .keys()
            .filter(|k| !self.taken.contains(*k) && !ignored(k))
            .collect();
        if !unused.is_empty() {
            return Err(Error::format(
                &self.path,
                format!(
                    "{} unexpected tensor(s), e.g. {} (is this the right architecture?)",
                    unused.len(),
                    unused
                        .iter()
                        .take(5)
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::half_to_f32;

    #[test]
    fn half_floats_convert_exactly() {
        assert_eq!(half_to_f32(0x3c00), 1.0);
        assert_eq!(half_to_f32(0xc000), -2.0);
        assert_eq!(half_to_f32(0x7bff), 65504.0);
        assert_eq!(half_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(half_to_f32(0x3555), 0.333_251_95);
        assert!(half_to_f32(0x7c00).is_infinite());
    }
}
