//! `config` owns what a run is asked to do and what it leaves on record: the model and training
//! configuration ([`SasRecConfig`], [`TrainConfig`] and its enums), the records written to
//! `run.json` and `groups.json` and read back ([`record`]), and the one rule that picks the best
//! epoch and the best run ([`select`]).
//!
//! Invariant: plain serde types (the enums also derive clap's `ValueEnum`, so the CLI takes them
//! as flags) and checks of their values. This module imports nothing of the
//! crate but [`crate::error`], so training, storage, the engine and the CLI all use it and none
//! of them has to import another for it.

pub mod record;
pub mod select;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
pub use record::{EpochRecord, Groups, RunRecord, code_version};
pub use shared::sasrec::Mode;

/// Hyper-parameters of the SASRec recommender; the defaults are the reference's (docs/method.md
/// §5). `rec::SasRec` is built from it with [`SasRecConfig::init`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SasRecConfig {
    /// Number of items; internal ids are `1..=n_items`, 0 is padding.
    pub n_items: usize,
    /// Hidden size `d` (32).
    pub hidden: usize,
    /// Transformer blocks (2).
    pub blocks: usize,
    /// Attention heads (4; `hidden` must be divisible by it).
    pub heads: usize,
    /// Window length `L` (10).
    pub max_len: usize,
    /// Dropout on embeddings, attention weights and both feed-forward positions (0.3).
    pub dropout: f64,
    /// LayerNorm epsilon (1e-8).
    pub ln_eps: f64,
    /// `reference` (the PerPEFT code: no padding mask) or `standard` (padding masked).
    pub mode: Mode,
}

impl SasRecConfig {
    /// The reference configuration for `n_items` items.
    pub fn new(n_items: usize) -> Self {
        Self {
            n_items,
            hidden: 32,
            blocks: 2,
            heads: 4,
            max_len: 10,
            dropout: 0.3,
            ln_eps: 1e-8,
            mode: Mode::Reference,
        }
    }

    /// The same with another padding treatment.
    pub fn with_mode(self, mode: Mode) -> Self {
        Self { mode, ..self }
    }

    /// The same with another dropout rate.
    pub fn with_dropout(self, dropout: f64) -> Self {
        Self { dropout, ..self }
    }
}

/// How item embeddings are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// ID embeddings only (the paper's "w/o MM").
    #[default]
    IdOnly,
    /// Frozen backbone features (cached once) through the projector, plus ID embeddings.
    Frozen,
    /// One PEFT adapter + projector + SASRec trained jointly ("Global PEFT").
    GlobalPeft,
    /// Global PEFT, user grouping, then one adapter and projector per group (PerPEFT).
    Perpeft,
}

impl Method {
    /// The name used in records and tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::IdOnly => "id-only",
            Self::Frozen => "frozen",
            Self::GlobalPeft => "global-peft",
            Self::Perpeft => "perpeft",
        }
    }

    /// Whether the method trains a PEFT module.
    pub fn is_peft(self) -> bool {
        matches!(self, Self::GlobalPeft | Self::Perpeft)
    }
}

/// Which foundation model encodes items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BackboneChoice {
    /// all-MiniLM-L6-v2 text + EfficientNet-Lite0 images (fetched by `scripts/fetch_data.py`).
    #[default]
    Minilm,
    /// CLIP from `clip_dir` (Hugging Face layout).
    Clip,
}

/// Which halves of the item feature are used (the modality ablations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Modality {
    /// Image and text (text alone when the dataset has no images).
    #[default]
    Both,
    /// The text half only ("w/o visual modality").
    Text,
    /// The image half only ("w/o textual modality"); needs images.
    Image,
}

/// Which training targets an epoch takes from each user's training sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Windows {
    /// The last `max_len` (input → next) pairs of each user, once per epoch (the reference).
    #[default]
    Last,
    /// Every (input → next) pair of each user: the training sequence cut from its end into
    /// windows of `max_len` targets, each window a row of its own.
    All,
}

/// The training loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Loss {
    /// Binary cross-entropy of the positive against `negatives` sampled negatives (the
    /// reference, with one).
    #[default]
    Bce,
    /// Bayesian personalised ranking: `-log σ(s⁺ − s⁻)` over `negatives` sampled negatives.
    Bpr,
    /// Softmax cross-entropy. With `negatives = 0` over every item (each step builds the whole
    /// item table: cheap for IDs, frozen features and IISAN, costly for LoRA/(IA)3); with
    /// `negatives = n` over each position's positive and `n` negatives drawn once per batch
    /// (sampled softmax; LoRA/(IA)3 always sample, 256 when `negatives = 0`). In PerPEFT's per-group stage both run over the group's negative pool
    /// (plus the positive) unless `uniform_negatives`.
    Ce,
}

/// Which PEFT method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum PeftKind {
    /// Low-rank updates of q and v.
    #[default]
    Lora,
    /// Learned scalings of k, v and the MLP input.
    Ia3,
    /// The IISAN side network over cached hidden states.
    Iisan,
}

impl PeftKind {
    /// The name used in records and tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Lora => "lora",
            Self::Ia3 => "ia3",
            Self::Iisan => "iisan",
        }
    }
}

/// PEFT hyper-parameters (docs/method.md §3).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PeftConfig {
    pub kind: PeftKind,
    /// LoRA rank.
    pub rank: usize,
    /// LoRA alpha (scaling = alpha / rank).
    pub alpha: f64,
    /// LoRA dropout.
    pub dropout: f64,
}

impl Default for PeftConfig {
    fn default() -> Self {
        Self {
            kind: PeftKind::Lora,
            rank: 4,
            alpha: 8.0,
            dropout: 0.1,
        }
    }
}

/// Training hyper-parameters. A TOML file with any of these fields can be given with
/// `--config`; command-line flags override it ([`TrainConfig::with_overrides`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// How item embeddings are made.
    pub method: Method,
    /// Backbone of multimodal methods.
    pub backbone: BackboneChoice,
    /// CLIP directory (for `backbone = "clip"`).
    pub clip_dir: Option<PathBuf>,
    /// Where `scripts/fetch_data.py` put the MiniLM and EfficientNet weights.
    pub weights_dir: PathBuf,
    /// Cache directory for frozen feature tables (`CACHE/features/`).
    pub cache_dir: PathBuf,
    /// Epochs.
    pub epochs: usize,
    /// Windows per batch (reference: 16, one per user).
    pub batch_size: usize,
    /// AdamW learning rate of SASRec and the projector.
    pub lr: f64,
    /// AdamW decoupled weight decay of SASRec and the projector.
    pub weight_decay: f64,
    /// AdamW learning rate of the PEFT parameters (the second optimiser of the reference).
    pub peft_lr: f64,
    /// AdamW weight decay of the PEFT parameters.
    pub peft_weight_decay: f64,
    /// Seed of initialisation, sampling, dropout and grouping.
    pub seed: u64,
    /// PEFT method and its hyper-parameters (`global-peft`, `perpeft`).
    pub peft: PeftConfig,
    /// Number of user groups K (`perpeft`).
    pub groups: usize,
    /// Epochs of the global stage of `perpeft` (docs/method.md §7: 10); `epochs` counts the
    /// per-group stage (§9.3: 20).
    pub global_epochs: usize,
    /// Ablation: random user groups instead of k-means.
    pub random_groups: bool,
    /// Ablation: uniform negatives over all items in the per-group stage.
    pub uniform_negatives: bool,
    /// Ablation (`global-peft`): one LoRA adapter of rank `groups · rank` ("Large Global PEFT").
    pub large_global: bool,
    /// Ablation: which feature halves to use.
    pub modality: Modality,
    /// `perpeft`: take stage 1 from this finished `global-peft` run (its last epoch) instead of
    /// training it. The global stage is seeded as a `global-peft` run is, so with the same
    /// seed and `global_epochs` equal to its epochs the result is the same as training it.
    pub global_from: Option<PathBuf>,
    /// `perpeft` with `global_from`: start from that run's best validation epoch instead of its
    /// last (a global run trained with early stopping).
    pub global_from_best: bool,
    /// SASRec's window length `L` (reference: 10): the input length at training and inference.
    pub max_len: usize,
    /// SASRec's dropout rate (reference: 0.3).
    pub dropout: f64,
    /// SASRec's padding treatment (reference: no padding mask).
    pub mode: Mode,
    /// Which targets an epoch takes from each user (reference: the last window).
    pub windows: Windows,
    /// The loss (reference: BCE).
    pub loss: Loss,
    /// Sampled negatives: per target position for BCE and BPR; per batch, shared by its
    /// positions, for CE (0: a full softmax over every item).
    pub negatives: usize,
    /// Stop when validation NDCG@20 has not improved for this many epochs (0: never).
    pub patience: usize,
    /// `perpeft`: keep the shared SASRec (ID and position embeddings included) as the global
    /// stage left it during the per-group stage, training only the groups' adapters and
    /// projectors.
    pub freeze_shared: bool,
    /// `perpeft` (IISAN, with `freeze_shared`): after each per-group epoch, a group whose own
    /// users' validation NDCG@20 did not improve goes back to its adapter and projector from
    /// before the epoch, so each group ends with its best epoch's, or the global stage's when
    /// no epoch beat it.
    pub group_select: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            method: Method::IdOnly,
            backbone: BackboneChoice::Minilm,
            clip_dir: None,
            weights_dir: PathBuf::from(".cache/weights"),
            cache_dir: PathBuf::from(".cache"),
            epochs: 30,
            batch_size: 16,
            lr: 1e-3,
            weight_decay: 1e-4,
            peft_lr: 1e-4,
            peft_weight_decay: 1e-4,
            seed: 42,
            peft: PeftConfig::default(),
            groups: 8,
            global_epochs: 10,
            random_groups: false,
            uniform_negatives: false,
            large_global: false,
            modality: Modality::Both,
            global_from: None,
            global_from_best: false,
            max_len: 10,
            dropout: 0.3,
            mode: Mode::Reference,
            windows: Windows::Last,
            loss: Loss::Bce,
            negatives: 1,
            patience: 0,
            freeze_shared: false,
            group_select: false,
        }
    }
}

/// Shared negatives of a CE step with LoRA/(IA)3 when `negatives` is 0 (a full softmax would
/// encode every item through the backbone at every step).
pub const ADAPTER_SHARED_NEGATIVES: usize = 256;

/// Named starting points of a configuration, before a file's fields and the flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// The recommended defaults (docs/RESULTS.md, "What we learned").
    #[default]
    Recommended,
    /// The PerPEFT reference recipe ([`TrainConfig::default`]; docs/method.md §6).
    Reference,
}

impl Preset {
    /// The configuration this preset starts from.
    pub fn config(self) -> TrainConfig {
        match self {
            Self::Recommended => TrainConfig::recommended(),
            Self::Reference => TrainConfig::default(),
        }
    }
}

impl TrainConfig {
    /// The defaults of `perpeft train` (loss, learning rate, softmax and patience compared on
    /// validation NDCG@20 only; docs/RESULTS.md): every target of every user, longer windows
    /// with padding masked, and a full softmax. Everything else is the reference's.
    pub fn recommended() -> Self {
        Self {
            max_len: 50,
            dropout: 0.3,
            mode: Mode::Standard,
            windows: Windows::All,
            loss: Loss::Ce,
            negatives: 0,
            lr: 2e-3,
            batch_size: 128,
            epochs: 200,
            patience: 10,
            ..Self::default()
        }
    }

    /// Whether the loss is a softmax over every item (CE without sampled negatives: each step
    /// builds the whole item table). Never for LoRA/(IA)3, whose table would take the backbone
    /// over every item at every step: they sample [`ADAPTER_SHARED_NEGATIVES`] instead.
    pub fn full_softmax(&self) -> bool {
        self.loss == Loss::Ce && self.negatives == 0 && !self.adapts_backbone()
    }

    /// Whether items are encoded through the backbone at every step (LoRA, (IA)3).
    fn adapts_backbone(&self) -> bool {
        self.method.is_peft() && self.peft.kind != PeftKind::Iisan
    }

    /// Negatives the sampler draws per target position (BCE, BPR).
    pub fn negatives_per_position(&self) -> usize {
        if self.loss == Loss::Ce {
            0
        } else {
            self.negatives
        }
    }

    /// Negatives the sampler draws per batch, shared by its positions (sampled CE).
    pub fn shared_negatives(&self) -> usize {
        match self.loss {
            Loss::Ce if self.negatives == 0 && self.adapts_backbone() => ADAPTER_SHARED_NEGATIVES,
            Loss::Ce => self.negatives,
            _ => 0,
        }
    }

    /// SASRec's configuration for `n_items` items under this training configuration.
    pub fn sasrec(&self, n_items: usize) -> SasRecConfig {
        SasRecConfig {
            max_len: self.max_len,
            ..SasRecConfig::new(n_items)
                .with_mode(self.mode)
                .with_dropout(self.dropout)
        }
    }

    /// Reads a TOML configuration file over the reference defaults (unknown keys are an error
    /// naming the file).
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).at(path)?;
        toml::from_str(&text).map_err(|e| Error::format(path, e))
    }

    /// Reads a TOML configuration file over `self`: each field the file sets replaces this
    /// configuration's (a `[peft]` table the whole PEFT part, its missing keys at their
    /// defaults). Unknown keys and bad values are an error naming the file.
    pub fn with_toml_file(&self, path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).at(path)?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| Error::format(path, e))?;
        // checked whole first, so a file's own mistakes are reported with its name
        let _: TrainConfig = table
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| Error::format(path, e))?;
        self.with_overrides(&table)
            .map_err(|e| Error::format(path, e))
    }

    /// This configuration with the fields of `overrides` replaced: `overrides` serialises to a
    /// map from field paths (`epochs`, `peft.rank`) to values, where a null leaves the field as
    /// it is. The CLI's flags are such a map, so every flag is applied here, in one place; an
    /// override naming no field is an error.
    pub fn with_overrides(&self, overrides: &impl Serialize) -> Result<Self> {
        use serde_json::Value;
        let invalid = |e: serde_json::Error| Error::Invalid(format!("configuration: {e}"));
        let mut config = serde_json::to_value(self).map_err(invalid)?;
        let Value::Object(overrides) = serde_json::to_value(overrides).map_err(invalid)? else {
            return Err(Error::Invalid("overrides must be a map of fields".into()));
        };
        for (path, value) in overrides.into_iter().filter(|(_, v)| !v.is_null()) {
            let mut slot = &mut config;
            for key in path.split('.') {
                slot = slot
                    .get_mut(key)
                    .ok_or_else(|| Error::Invalid(format!("no configuration field {path:?}")))?;
            }
            *slot = value;
        }
        serde_json::from_value(config).map_err(invalid)
    }

    /// The method as recorded: e.g. `perpeft-lora`, `perpeft-iisan+random-groups`.
    pub fn label(&self) -> String {
        let mut label = self.method.name().to_string();
        if self.method.is_peft() {
            label = format!("{label}-{}", self.peft.kind.name());
        }
        for (on, name) in [
            (self.random_groups, "random-groups"),
            (self.uniform_negatives, "uniform-negatives"),
            (self.large_global, "large"),
            (self.freeze_shared, "freeze-shared"),
            (self.group_select, "group-select"),
            (self.modality == Modality::Text, "text-only"),
            (self.modality == Modality::Image, "image-only"),
        ] {
            if on {
                label = format!("{label}+{name}");
            }
        }
        label
    }

    /// The backbone's name in records (`none` for ID-only).
    pub fn backbone_name(&self) -> &'static str {
        match self.method {
            Method::IdOnly => "none",
            _ => match self.backbone {
                BackboneChoice::Minilm => "minilm",
                BackboneChoice::Clip => "clip",
            },
        }
    }

    /// Refuses combinations of fields that cannot train, saying which and why.
    pub fn check(&self) -> Result<()> {
        if self.large_global
            && (self.method != Method::GlobalPeft || self.peft.kind != PeftKind::Lora)
        {
            return Err(Error::Invalid(
                "the large-global ablation is a global-peft run with LoRA".into(),
            ));
        }
        if self.global_from_best && self.global_from.is_none() {
            return Err(Error::Invalid(
                "--global-from-best needs --global-from (the run to start from)".into(),
            ));
        }
        if self.global_from.is_some() && self.method != Method::Perpeft {
            return Err(Error::Invalid(format!(
                "--global-from gives a perpeft run its global stage; this is a {} run",
                self.label()
            )));
        }
        if self.method == Method::Perpeft && self.groups == 0 {
            return Err(Error::Invalid("perpeft needs at least one group".into()));
        }
        let positive = |v: f64| v.is_finite() && v > 0.0;
        let fraction = |v: f64| v.is_finite() && (0.0..1.0).contains(&v);
        for (name, ok) in [
            ("epochs must be at least 1", self.epochs >= 1),
            ("batch_size must be at least 1", self.batch_size >= 1),
            ("lr must be a positive number", positive(self.lr)),
            ("peft_lr must be a positive number", positive(self.peft_lr)),
            (
                "weight_decay must be a number from 0",
                self.weight_decay.is_finite() && self.weight_decay >= 0.0,
            ),
            (
                "peft_weight_decay must be a number from 0",
                self.peft_weight_decay.is_finite() && self.peft_weight_decay >= 0.0,
            ),
            ("peft.rank must be at least 1", self.peft.rank >= 1),
            ("max_len must be at least 1", self.max_len >= 1),
            ("dropout must be in [0, 1)", fraction(self.dropout)),
            (
                "negatives must be at least 1 for BCE and BPR",
                self.loss == Loss::Ce || self.negatives >= 1,
            ),
            (
                "freeze_shared is for perpeft's per-group stage",
                !self.freeze_shared || self.method == Method::Perpeft,
            ),
            (
                "group_select needs perpeft with IISAN and freeze_shared",
                !self.group_select
                    || (self.method == Method::Perpeft
                        && self.peft.kind == PeftKind::Iisan
                        && self.freeze_shared),
            ),
            (
                "peft.alpha must be a positive number",
                positive(self.peft.alpha),
            ),
            (
                "peft.dropout must be in [0, 1)",
                fraction(self.peft.dropout),
            ),
            (
                "global_epochs must be at least 1 for perpeft",
                self.method != Method::Perpeft || self.global_epochs >= 1,
            ),
        ] {
            if !ok {
                return Err(Error::Invalid(name.into()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Flags {
        epochs: Option<usize>,
        seed: Option<u64>,
        #[serde(rename = "peft.rank")]
        rank: Option<usize>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        random_groups: bool,
    }

    #[test]
    fn overrides_replace_only_the_fields_they_name() {
        let base = TrainConfig {
            lr: 5e-4,
            seed: 7,
            ..TrainConfig::default()
        };
        let flags = Flags {
            epochs: Some(3),
            seed: None,
            rank: Some(16),
            random_groups: true,
        };
        let cfg = base.with_overrides(&flags).unwrap();
        assert_eq!(cfg.epochs, 3);
        assert_eq!(cfg.peft.rank, 16);
        assert!(cfg.random_groups);
        assert_eq!(
            (cfg.lr, cfg.seed),
            (5e-4, 7),
            "fields without a flag are kept"
        );
        let untouched = base
            .with_overrides(&Flags {
                epochs: None,
                seed: None,
                rank: None,
                random_groups: false,
            })
            .unwrap();
        assert_eq!(untouched, base);
    }

    #[test]
    fn values_that_cannot_train_are_refused_by_name() {
        let bad = |f: fn(&mut TrainConfig)| {
            let mut c = TrainConfig::default();
            f(&mut c);
            c.check().unwrap_err().to_string()
        };
        assert!(bad(|c| c.peft.dropout = 1.5).contains("peft.dropout"));
        assert!(bad(|c| c.peft.rank = 0).contains("peft.rank"));
        assert!(bad(|c| c.lr = f64::NAN).contains("lr must"));
        assert!(bad(|c| c.epochs = 0).contains("epochs"));
        TrainConfig::default().check().unwrap();
    }

    #[test]
    fn an_override_of_no_field_is_refused() {
        #[derive(Serialize)]
        struct Typo {
            epoch: usize,
        }
        let err = TrainConfig::default()
            .with_overrides(&Typo { epoch: 3 })
            .unwrap_err();
        assert!(err.to_string().contains("\"epoch\""), "{err}");
    }
}
