//! `device` turns `--device wgpu|flex|auto` into a burn [`Device`].
//!
//! `auto` takes a real GPU when wgpu finds a discrete or integrated one and falls back to the
//! pure-Rust `flex` CPU backend otherwise (a software Vulkan such as lavapipe is *not* taken by
//! `auto`: it is far slower than flex; ask for it with `wgpu`).

use std::sync::OnceLock;

use burn::tensor::{Device, DeviceKind};

/// Which backend to run on.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// A real GPU through wgpu if present, else flex.
    Auto,
    /// wgpu on whatever adapter it picks (a GPU, or a software Vulkan/GL driver).
    Wgpu,
    /// burn's pure-Rust CPU backend.
    Flex,
}

/// A resolved device and a short name for records and logs.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The burn device (without autodiff).
    pub device: Device,
    /// `wgpu` or `flex`.
    pub name: &'static str,
}

fn init_wgpu(kind: DeviceKind) -> Result<Device, String> {
    Device::wgpu_options()
        .device_kind(kind)
        .init()
        .map_err(|e| e.to_string())
}

/// wgpu's runtime can be initialised once per process; remember each outcome.
fn wgpu_default() -> Result<Device, String> {
    static CELL: OnceLock<Result<Device, String>> = OnceLock::new();
    CELL.get_or_init(|| init_wgpu(DeviceKind::DefaultDevice))
        .clone()
}

fn wgpu_real_gpu() -> Option<Device> {
    static CELL: OnceLock<Option<Device>> = OnceLock::new();
    CELL.get_or_init(|| {
        init_wgpu(DeviceKind::DiscreteGpu(0))
            .or_else(|_| init_wgpu(DeviceKind::IntegratedGpu(0)))
            .ok()
    })
    .clone()
}

impl DeviceChoice {
    /// Resolves the choice; `wgpu` fails with a clear message when no adapter exists.
    pub fn resolve(self) -> crate::error::Result<Resolved> {
        match self {
            DeviceChoice::Flex => Ok(Resolved {
                device: Device::flex(),
                name: "flex",
            }),
            DeviceChoice::Wgpu => wgpu_default()
                .map(|device| Resolved {
                    device,
                    name: "wgpu",
                })
                .map_err(|e| {
                    crate::error::Error::Unavailable(format!(
                        "wgpu found no usable adapter ({e}); install a GPU driver or Mesa's \
                         software Vulkan (`apt-get install mesa-vulkan-drivers libvulkan1`), \
                         or use --device flex"
                    ))
                }),
            DeviceChoice::Auto => Ok(match wgpu_real_gpu() {
                Some(device) => Resolved {
                    device,
                    name: "wgpu",
                },
                None => Resolved {
                    device: Device::flex(),
                    name: "flex",
                },
            }),
        }
    }
}
