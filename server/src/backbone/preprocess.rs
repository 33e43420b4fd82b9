//! Image preprocessing as each tower's reference pipeline does it: resize the shorter side
//! (keeping the aspect ratio, the longer side truncated to an integer), centre-crop a square,
//! scale to [0, 1], normalise per channel, lay out as CHW. Decoding, colour conversion and
//! cropping use the `image` crate; the resampling kernel is Pillow's own algorithm (both
//! references resize with Pillow), because the `image` crate's filters differ from Pillow's by
//! up to 14 levels at hard edges (Pillow rounds and clips to 8 bits between its horizontal and
//! vertical passes, and quantises its weights to 22-bit fixed point), which moves
//! EfficientNet features by ~0.1.

use burn::prelude::*;
use image::imageops;
use image::{DynamicImage, RgbImage};

/// Pillow's resampling filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterType {
    /// `Image.BILINEAR` (triangle, support 1).
    Triangle,
    /// `Image.BICUBIC` (cubic convolution with a = −0.5, support 2).
    CatmullRom,
}

impl FilterType {
    fn support(self) -> f64 {
        match self {
            Self::Triangle => 1.0,
            Self::CatmullRom => 2.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Self::Triangle => {
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Self::CatmullRom => {
                let a = -0.5;
                if x < 1.0 {
                    ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * a
                } else {
                    0.0
                }
            }
        }
    }
}

/// Pillow's `PRECISION_BITS` for 8-bit images.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc`: for each output index, the first
/// input index and the fixed-point weights.
fn coefficients(in_size: usize, out_size: usize, filter: FilterType) -> Vec<(usize, Vec<i32>)> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let ss = 1.0 / filterscale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let w: Vec<f64> = (xmin..xmax)
                .map(|x| filter.weight((x as f64 - center + 0.5) * ss))
                .collect();
            let total: f64 = w.iter().sum();
            let fixed = w
                .iter()
                .map(|&k| {
                    let k = if total != 0.0 { k / total } else { k };
                    let scaled = k * (1u32 << PRECISION_BITS) as f64;
                    if k < 0.0 {
                        (scaled - 0.5) as i32
                    } else {
                        (scaled + 0.5) as i32
                    }
                })
                .collect();
            (xmin, fixed)
        })
        .collect()
}

fn clip8(v: i64) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// One Pillow pass along x (`horizontal`) or y, 8 bits in and out.
fn resample_pass(
    src: &RgbImage,
    out_w: u32,
    out_h: u32,
    filter: FilterType,
    horizontal: bool,
) -> RgbImage {
    let (w, h) = src.dimensions();
    let coeffs = if horizontal {
        coefficients(w as usize, out_w as usize, filter)
    } else {
        coefficients(h as usize, out_h as usize, filter)
    };
    let raw = src.as_raw();
    let mut out = RgbImage::new(out_w, out_h);
    for y in 0..out_h {
        for x in 0..out_w {
            let (start, k) = &coeffs[if horizontal { x } else { y } as usize];
            let mut acc = [1i64 << (PRECISION_BITS - 1); 3];
            for (i, &kw) in k.iter().enumerate() {
                let (sx, sy) = if horizontal {
                    (start + i, y as usize)
                } else {
                    (x as usize, start + i)
                };
                let p = (sy * w as usize + sx) * 3;
                for c in 0..3 {
                    acc[c] += raw[p + c] as i64 * kw as i64;
                }
            }
            out.put_pixel(x, y, image::Rgb(acc.map(clip8)));
        }
    }
    out
}

/// `Image.resize((w, h), filter)` for an RGB image, as Pillow computes it (horizontal pass,
/// then vertical, each only when that side changes).
pub fn pillow_resize(img: &RgbImage, w: u32, h: u32, filter: FilterType) -> RgbImage {
    let (iw, ih) = img.dimensions();
    let mut out = img.clone();
    if w != iw {
        out = resample_pass(&out, w, ih, filter, true);
    }
    if h != ih {
        out = resample_pass(&out, w, h, filter, false);
    }
    out
}

/// How a crop offset is rounded when the margin is odd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CropRounding {
    /// torchvision `CenterCrop`: `int(round(margin / 2))`, Python's round (half to even).
    HalfEven,
    /// Hugging Face `center_crop`: `margin // 2`.
    Floor,
}

/// One preprocessing recipe.
#[derive(Clone, Copy, Debug)]
pub struct ImagePrep {
    /// Target of the shorter side.
    pub shorter_side: u32,
    /// Side of the centre crop.
    pub crop: u32,
    pub filter: FilterType,
    pub rounding: CropRounding,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// EfficientNet-PyTorch (and the Lite port's) recipe: `Resize(224)` (PIL bilinear),
/// `CenterCrop(224)`, `ToTensor`, ImageNet mean/std.
pub const EFFICIENTNET: ImagePrep = ImagePrep {
    shorter_side: 224,
    crop: 224,
    filter: FilterType::Triangle,
    rounding: CropRounding::HalfEven,
    mean: [0.485, 0.456, 0.406],
    std: [0.229, 0.224, 0.225],
};

/// CLIP's recipe (`CLIPImageProcessor` defaults): shorter side to 224 bicubic, centre crop 224,
/// rescale 1/255, CLIP mean/std.
pub const CLIP: ImagePrep = ImagePrep {
    shorter_side: 224,
    crop: 224,
    filter: FilterType::CatmullRom,
    rounding: CropRounding::Floor,
    mean: [0.481_454_66, 0.457_827_5, 0.408_210_73],
    std: [0.268_629_54, 0.261_302_6, 0.275_777_1],
};

fn half_even_half(margin: u32) -> u32 {
    // round(margin / 2) with ties to even
    let q = margin / 2;
    if margin % 2 == 1 && q % 2 == 1 {
        q + 1
    } else {
        q
    }
}

impl ImagePrep {
    /// The resized and cropped 8-bit image.
    pub fn crop(&self, img: &DynamicImage) -> RgbImage {
        let rgb = img.to_rgb8();
        let (w, h) = rgb.dimensions();
        let s = self.shorter_side as u64;
        let (nw, nh) = if w <= h {
            (self.shorter_side, (s * h as u64 / w as u64) as u32)
        } else {
            ((s * w as u64 / h as u64) as u32, self.shorter_side)
        };
        let resized = if (nw, nh) == (w, h) {
            rgb
        } else {
            pillow_resize(&rgb, nw, nh, self.filter)
        };
        let c = self.crop;
        let offset = |margin: u32| match self.rounding {
            CropRounding::HalfEven => half_even_half(margin),
            CropRounding::Floor => margin / 2,
        };
        let (left, top) = (offset(nw.saturating_sub(c)), offset(nh.saturating_sub(c)));
        imageops::crop_imm(&resized, left, top, c.min(nw), c.min(nh)).to_image()
    }

    /// Normalised CHW floats of an already cropped image.
    pub fn normalize(&self, img: &RgbImage) -> Vec<f32> {
        let (w, h) = img.dimensions();
        let plane = (w * h) as usize;
        let mut out = vec![0.0f32; 3 * plane];
        for (i, p) in img.pixels().enumerate() {
            for c in 0..3 {
                out[c * plane + i] = (p[c] as f32 / 255.0 - self.mean[c]) / self.std[c];
            }
        }
        out
    }

    /// A batch `[B, 3, crop, crop]` of already cropped images.
    pub fn tensor(&self, cropped: &[RgbImage], device: &Device) -> Tensor<4> {
        let c = self.crop as usize;
        let mut values = Vec::with_capacity(cropped.len() * 3 * c * c);
        for img in cropped {
            assert_eq!(img.dimensions(), (self.crop, self.crop), "crop first");
            values.extend(self.normalize(img));
        }
        Tensor::from_data(TensorData::new(values, [cropped.len(), 3, c, c]), device)
    }

    /// Preprocesses a batch of images into `[B, 3, crop, crop]`.
    pub fn batch(&self, images: &[DynamicImage], device: &Device) -> Tensor<4> {
        let cropped: Vec<RgbImage> = images.iter().map(|i| self.crop(i)).collect();
        self.tensor(&cropped, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_offsets_round_like_the_references() {
        assert_eq!(half_even_half(74), 37);
        assert_eq!(half_even_half(75), 38); // round(37.5) = 38
        assert_eq!(half_even_half(73), 36); // round(36.5) = 36
        let img = DynamicImage::ImageRgb8(RgbImage::from_fn(300, 224, |x, _| {
            image::Rgb([x as u8, 0, 0])
        }));
        // 300 - 224 = 76: both rules crop from column 38
        assert_eq!(EFFICIENTNET.crop(&img).get_pixel(0, 0)[0], 38);
        assert_eq!(CLIP.crop(&img).get_pixel(0, 0)[0], 38);
        let odd = DynamicImage::ImageRgb8(RgbImage::from_fn(297, 224, |x, _| {
            image::Rgb([x as u8, 0, 0])
        }));
        // margin 73: torchvision rounds 36.5 to 36, HF floors to 36; margin 75 would differ
        assert_eq!(EFFICIENTNET.crop(&odd).get_pixel(0, 0)[0], 36);
        let odd = DynamicImage::ImageRgb8(RgbImage::from_fn(299, 224, |x, _| {
            image::Rgb([x as u8, 0, 0])
        }));
        assert_eq!(EFFICIENTNET.crop(&odd).get_pixel(0, 0)[0], 38);
        assert_eq!(CLIP.crop(&odd).get_pixel(0, 0)[0], 37);
    }

    #[test]
    fn normalisation_is_channel_first() {
        let img = RgbImage::from_fn(2, 1, |x, _| image::Rgb([255 * x as u8, 0, 0]));
        let v = EFFICIENTNET.normalize(&img);
        assert_eq!(v.len(), 6);
        assert!((v[0] - (0.0 - 0.485) / 0.229).abs() < 1e-6);
        assert!((v[1] - (1.0 - 0.485) / 0.229).abs() < 1e-6);
        assert!((v[2] - (0.0 - 0.456) / 0.224).abs() < 1e-6);
    }
}
