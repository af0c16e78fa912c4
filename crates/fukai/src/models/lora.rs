//! LoRA (low-rank adaptation, Hu et al. 2021) for [`Llama`]: each targeted projection
//! `y = x Wᵀ` becomes `y = x Wᵀ + (alpha / rank) · dropout(x) Aᵀ Bᵀ` with `A: [rank, in]` and
//! `B: [out, rank]` trained and `W` frozen. The adapter sits beside the model's weights (they
//! are neither copied nor changed), is saved as safetensors under the names PEFT uses, and
//! can be merged into the weights (`W + scale · B A`) for inference.
//!
//! Initialization follows PEFT: `A` Kaiming-uniform (`a = √5`, so U(±1/√in)), `B` zeros, so a
//! fresh adapter leaves the model's outputs exactly as they were.

use super::llama::{Llama, LlamaConfig};
use crate::bail;
use crate::error::{Error, Result};
use crate::io::load_safetensors;
use crate::nn::{FeedForward, KvCache, Module, TransformerEncoderLayer};
use crate::rng::Generator;
use crate::tensor::{DType, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;

/// A projection of a LLaMA decoder layer an adapter can target, named as in Hugging Face's
/// and PEFT's `target_modules`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LoraTarget {
    /// Attention query projection `hidden -> hidden`.
    QProj,
    /// Attention key projection `hidden -> kv_heads·head_dim`.
    KProj,
    /// Attention value projection `hidden -> kv_heads·head_dim`.
    VProj,
    /// Attention output projection `hidden -> hidden`.
    OProj,
    /// SwiGLU gate `hidden -> intermediate`.
    GateProj,
    /// SwiGLU up `hidden -> intermediate`.
    UpProj,
    /// SwiGLU down `intermediate -> hidden`.
    DownProj,
}

const TARGETS: usize = 7;

impl LoraTarget {
    /// Every target, in the order layers hold them.
    pub const ALL: [LoraTarget; TARGETS] = [
        LoraTarget::QProj,
        LoraTarget::KProj,
        LoraTarget::VProj,
        LoraTarget::OProj,
        LoraTarget::GateProj,
        LoraTarget::UpProj,
        LoraTarget::DownProj,
    ];

    /// The module name (`q_proj`, ..., `down_proj`).
    pub fn name(self) -> &'static str {
        self.path().rsplit('.').next().unwrap_or_default()
    }

    /// The module's path inside a decoder layer, as in Hugging Face's state dicts.
    fn path(self) -> &'static str {
        match self {
            LoraTarget::QProj => "self_attn.q_proj",
            LoraTarget::KProj => "self_attn.k_proj",
            LoraTarget::VProj => "self_attn.v_proj",
            LoraTarget::OProj => "self_attn.o_proj",
            LoraTarget::GateProj => "mlp.gate_proj",
            LoraTarget::UpProj => "mlp.up_proj",
            LoraTarget::DownProj => "mlp.down_proj",
        }
    }

    /// Reads a module name; the error lists the names a LLaMA layer has.
    ///
    /// ```
    /// use fukai::models::LoraTarget;
    /// assert_eq!(LoraTarget::parse("v_proj")?, LoraTarget::VProj);
    /// assert!(LoraTarget::parse("c_attn").unwrap_err().to_string().contains("q_proj"));
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn parse(name: &str) -> Result<LoraTarget> {
        match LoraTarget::ALL.into_iter().find(|t| t.name() == name) {
            Some(t) => Ok(t),
            None => bail!(
                "lora",
                "module {name:?} is not one a LLaMA layer has ({})",
                LoraTarget::ALL.map(|t| t.name()).join(", ")
            ),
        }
    }

    /// Reads a comma-separated list (`q_proj,v_proj`, or `all`); sorted, without repeats.
    pub fn parse_list(list: &str) -> Result<Vec<LoraTarget>> {
        if list.trim() == "all" {
            return Ok(LoraTarget::ALL.to_vec());
        }
        let mut out = list
            .split(',')
            .map(|s| LoraTarget::parse(s.trim()))
            .collect::<Result<Vec<_>>>()?;
        out.sort();
        out.dedup();
        if out.is_empty() {
            bail!("lora", "no target modules given");
        }
        Ok(out)
    }

    /// `(out, in)` of the projection in a model of this config.
    fn shape(self, c: &LlamaConfig) -> (usize, usize) {
        let kvd = c.kv_heads * c.head_dim;
        match self {
            LoraTarget::QProj | LoraTarget::OProj => (c.hidden, c.hidden),
            LoraTarget::KProj | LoraTarget::VProj => (kvd, c.hidden),
            LoraTarget::GateProj | LoraTarget::UpProj => (c.intermediate, c.hidden),
            LoraTarget::DownProj => (c.hidden, c.intermediate),
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Rank, scale, targets and dropout of an adapter.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraConfig {
    /// Inner width of the update (`r`).
    pub rank: usize,
    /// The update is scaled by `alpha / rank` (`lora_alpha`).
    pub alpha: f64,
    /// Projections adapted, in every layer.
    pub targets: Vec<LoraTarget>,
    /// Dropout on the adapter's input while training (`lora_dropout`), in [0, 1).
    pub dropout: f64,
}

impl LoraConfig {
    /// `rank`, `alpha` and `targets`, no dropout.
    pub fn new(rank: usize, alpha: f64, targets: &[LoraTarget]) -> Self {
        LoraConfig {
            rank,
            alpha,
            targets: targets.to_vec(),
            dropout: 0.0,
        }
    }

    /// `alpha / rank`.
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    /// Checks the numbers against a model; the error names the field.
    pub fn validate(&self, model: &LlamaConfig) -> Result<()> {
        let widest = LoraTarget::ALL
            .iter()
            .map(|t| {
                let (o, i) = t.shape(model);
                o.min(i)
            })
            .min()
            .unwrap_or(0);
        if self.rank == 0 || self.rank > widest {
            bail!(
                "lora",
                "field `rank`: expected 1..={widest} (the narrowest projection), found {}",
                self.rank
            );
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            bail!(
                "lora",
                "field `alpha`: expected a finite number > 0, found {}",
                self.alpha
            );
        }
        if !(0.0..1.0).contains(&self.dropout) {
            bail!(
                "lora",
                "field `dropout`: expected a probability in [0, 1), found {}",
                self.dropout
            );
        }
        if self.targets.is_empty() {
            bail!("lora", "field `targets`: expected at least one module");
        }
        Ok(())
    }
}

/// One adapted projection: `A: [rank, in]`, `B: [out, rank]`.
struct Pair {
    a: Tensor,
    b: Tensor,
}

/// A LoRA adapter for every layer of a [`Llama`]: build one with [`LoraAdapter::new`] (or read
/// one with [`LoraAdapter::load`]) and attach it with [`Llama::set_lora`].
///
/// ```
/// use fukai::models::{Llama, LlamaConfig, LoraAdapter, LoraConfig, LoraTarget, RopeScaling};
/// use fukai::{DType, Tensor};
/// let cfg = LlamaConfig {
///     vocab: 16, hidden: 8, intermediate: 12, layers: 1, heads: 2, kv_heads: 1, head_dim: 4,
///     rope_theta: 10000.0, rope_scaling: RopeScaling::None, rms_eps: 1e-5,
///     tie_embeddings: true, max_context: 32,
/// };
/// let mut model = Llama::random(cfg.clone(), 1)?;
/// let ids = Tensor::from_vec(vec![1i64, 5, 7], &[1, 3])?;
/// let before = model.logits(&ids, None)?.to_vec::<f32>()?;
/// let lora = LoraConfig::new(2, 4.0, &[LoraTarget::QProj, LoraTarget::VProj]);
/// model.set_lora(LoraAdapter::new(&cfg, lora, 7)?)?;
/// // B starts at zero: the adapted model computes exactly what the base model did.
/// assert_eq!(model.logits(&ids, None)?.to_vec::<f32>()?, before);
/// assert_eq!(model.lora().unwrap().params().len(), 4);
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct LoraAdapter {
    cfg: LoraConfig,
    /// Per layer, per [`LoraTarget::index`].
    layers: Vec<[Option<Pair>; TARGETS]>,
    /// Shapes of the model it was made for.
    model: LlamaConfig,
    training: bool,
    /// Dropout masks; behind a lock because forward passes borrow the model immutably.
    rng: Mutex<Generator>,
}

/// The low-rank update of an adapted projection, `scale · (x Aᵀ) Bᵀ` for `x: [..., in]`,
/// `A: [rank, in]`, `B: [out, rank]`: the adapted layer computes `x Wᵀ` plus this. The two
/// thin products cost `rank · (in + out)` per row instead of the `in · out` of forming `B A`.
///
/// ```
/// use fukai::Tensor;
/// let x = Tensor::from_vec(vec![1.0f32, 2.0], &[1, 2])?;
/// let a = Tensor::from_vec(vec![1.0f32, 1.0], &[1, 2])?; // rank 1
/// let b = Tensor::from_vec(vec![1.0f32, -1.0, 0.5], &[3, 1])?;
/// let d = fukai::models::lora_delta(&x, &a, &b, 2.0)?;
/// assert_eq!(d.to_vec::<f32>()?, [6.0, -6.0, 3.0]);
/// # Ok::<(), fukai::Error>(())
/// ```
pub fn lora_delta(x: &Tensor, a: &Tensor, b: &Tensor, scale: f64) -> Result<Tensor> {
    x.linear(a, None)?.linear(b, None)?.mul_scalar(scale)
}

/// PEFT's name of one of a pair's tensors.
fn tensor_name(layer: usize, t: LoraTarget, which: char) -> String {
    format!(
        "base_model.model.model.layers.{layer}.{}.lora_{which}.weight",
        t.path()
    )
}

/// Metadata keys (PEFT's adapter_config.json fields).
const META_RANK: &str = "r";
const META_ALPHA: &str = "lora_alpha";
const META_TARGETS: &str = "target_modules";
const META_DROPOUT: &str = "lora_dropout";

impl LoraAdapter {
    /// A fresh adapter for a model of config `model`: every `A` drawn U(±1/√in) from a
    /// generator seeded with `seed` (layer by layer, targets in [`LoraTarget::ALL`] order),
    /// every `B` zero.
    pub fn new(model: &LlamaConfig, cfg: LoraConfig, seed: u64) -> Result<Self> {
        cfg.validate(model)?;
        let mut gen = Generator::new(seed);
        let mut layers = Vec::with_capacity(model.layers);
        for _ in 0..model.layers {
            let mut pairs: [Option<Pair>; TARGETS] = Default::default();
            for t in LoraTarget::ALL {
                if !cfg.targets.contains(&t) {
                    continue;
                }
                let (out, inp) = t.shape(model);
                let bound = crate::nn::uniform_bound(inp);
                let a: Vec<f32> = gen
                    .uniform_f64(cfg.rank * inp)
                    .into_iter()
                    .map(|u| ((2.0 * u - 1.0) * bound) as f32)
                    .collect();
                pairs[t.index()] = Some(Pair {
                    a: Tensor::from_vec(a, &[cfg.rank, inp])?.with_grad()?,
                    b: Tensor::zeros(&[out, cfg.rank], DType::F32)?.with_grad()?,
                });
            }
            layers.push(pairs);
        }
        Ok(LoraAdapter {
            cfg,
            layers,
            model: model.clone(),
            training: false,
            rng: Mutex::new(Generator::new(seed ^ 0x4c6f_5241)),
        })
    }

    /// The adapter's settings.
    pub fn config(&self) -> &LoraConfig {
        &self.cfg
    }

    /// Turns dropout on (training) or off.
    pub fn set_training(&mut self, on: bool) {
        self.training = on;
    }

    /// The trainable tensors, `A` then `B` of each pair, layer by layer: what an optimizer
    /// updates.
    pub fn params(&self) -> Vec<Tensor> {
        self.pairs()
            .flat_map(|(_, _, p)| [p.a.clone(), p.b.clone()])
            .collect()
    }

    fn pairs(&self) -> impl Iterator<Item = (usize, LoraTarget, &Pair)> {
        self.layers.iter().enumerate().flat_map(|(i, l)| {
            LoraTarget::ALL
                .into_iter()
                .filter_map(move |t| l[t.index()].as_ref().map(|p| (i, t, p)))
        })
    }

    /// Every tensor under its PEFT name (`base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`, ...).
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        self.pairs()
            .flat_map(|(i, t, p)| {
                [
                    (tensor_name(i, t, 'A'), p.a.detach()),
                    (tensor_name(i, t, 'B'), p.b.detach()),
                ]
            })
            .collect()
    }

    /// The safetensors header metadata: PEFT's `adapter_config.json` fields (`r`,
    /// `lora_alpha`, `target_modules`, `lora_dropout`) as strings.
    pub fn metadata(&self) -> HashMap<String, String> {
        let names: Vec<&str> = self.cfg.targets.iter().map(|t| t.name()).collect();
        HashMap::from([
            ("format".to_string(), "pt".to_string()),
            ("peft_type".to_string(), "LORA".to_string()),
            (META_RANK.to_string(), self.cfg.rank.to_string()),
            (META_ALPHA.to_string(), self.cfg.alpha.to_string()),
            (META_TARGETS.to_string(), names.join(",")),
            (META_DROPOUT.to_string(), self.cfg.dropout.to_string()),
        ])
    }

    /// PEFT's `adapter_config.json` for this adapter (PEFT reads an adapter from a folder
    /// holding it beside `adapter_model.safetensors`).
    pub fn peft_config_json(&self) -> String {
        let names: Vec<&str> = self.cfg.targets.iter().map(|t| t.name()).collect();
        let v = serde_json::json!({
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "r": self.cfg.rank,
            "lora_alpha": self.cfg.alpha,
            "lora_dropout": self.cfg.dropout,
            "target_modules": names,
            "bias": "none",
            "fan_in_fan_out": false,
            "inference_mode": true,
        });
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }

    /// Writes the adapter to `path` (safetensors, f32, PEFT's names, settings in the
    /// metadata), atomically. An existing file is an error unless `overwrite`.
    pub fn save(&self, path: impl AsRef<Path>, overwrite: bool) -> Result<()> {
        let path = path.as_ref();
        if !overwrite && path.exists() {
            bail!(
                "lora",
                "{}: the file exists; refusing to overwrite it (ask for it explicitly, e.g. --force)",
                path.display()
            );
        }
        crate::io::save_safetensors(path, &self.named_tensors(), Some(&self.metadata()))
    }

    /// Reads an adapter saved by [`LoraAdapter::save`] (or by PEFT, with its settings copied
    /// into the metadata) for a model of config `model`. Every tensor's shape is checked
    /// against the model and the metadata; a missing, unknown or misshapen tensor, or a
    /// missing or bad setting, is an error naming the file, the tensor or field, what was
    /// expected and what was found.
    pub fn load(path: impl AsRef<Path>, model: &LlamaConfig) -> Result<Self> {
        let path = path.as_ref();
        let file = load_safetensors(path)?;
        let err = |msg: String| Error::Format {
            file: path.display().to_string(),
            msg,
        };
        let meta = file.metadata();
        let field = |k: &str, what: &str| -> Result<&String> {
            meta.get(k).ok_or_else(|| {
                err(format!(
                    "metadata field {k:?}: missing (expected {what}; found fields {:?})",
                    meta.keys().collect::<std::collections::BTreeSet<_>>()
                ))
            })
        };
        let rank_s = field(META_RANK, "the rank, a positive integer")?;
        let rank: usize = rank_s.trim().parse().map_err(|_| {
            err(format!(
                "metadata field {META_RANK:?}: expected a positive integer, found {rank_s:?}"
            ))
        })?;
        let alpha_s = field(META_ALPHA, "alpha, a number > 0")?;
        let alpha: f64 = alpha_s.trim().parse().map_err(|_| {
            err(format!(
                "metadata field {META_ALPHA:?}: expected a number > 0, found {alpha_s:?}"
            ))
        })?;
        let mut targets = Vec::new();
        for name in field(META_TARGETS, "comma-separated module names")?.split(',') {
            let name = name.trim();
            targets.push(LoraTarget::parse(name).map_err(|_| {
                err(format!(
                    "metadata field {META_TARGETS:?}: module {name:?} is not one the model has (expected some of {})",
                    LoraTarget::ALL.map(|t| t.name()).join(", ")
                ))
            })?);
        }
        targets.sort();
        targets.dedup();
        let dropout = match meta.get(META_DROPOUT) {
            None => 0.0,
            Some(s) => s.trim().parse().map_err(|_| {
                err(format!(
                    "metadata field {META_DROPOUT:?}: expected a probability, found {s:?}"
                ))
            })?,
        };
        let cfg = LoraConfig {
            rank,
            alpha,
            targets,
            dropout,
        };
        cfg.validate(model)
            .map_err(|e| err(format!("metadata: {e}")))?;
        let mut by_name: BTreeMap<&str, &Tensor> = file
            .tensors()
            .iter()
            .map(|(n, t)| (n.as_str(), t))
            .collect();
        let mut layers = Vec::with_capacity(model.layers);
        for i in 0..model.layers {
            let mut pairs: [Option<Pair>; TARGETS] = Default::default();
            for &t in &cfg.targets {
                let (out, inp) = t.shape(model);
                let mut take = |which: char, shape: [usize; 2]| -> Result<Tensor> {
                    let name = tensor_name(i, t, which);
                    let x = by_name.remove(name.as_str()).ok_or_else(|| {
                        err(format!(
                            "missing tensor {name:?} (expected shape {shape:?}: {} targets {} in each of the model's {} layers)",
                            META_TARGETS, t.name(), model.layers
                        ))
                    })?;
                    if x.shape() != shape.as_slice() {
                        return Err(err(format!(
                            "tensor {name:?}: expected shape {shape:?} (rank {rank} from the metadata, the model's {} is [{out}, {inp}]), found {:?}",
                            t.name(),
                            x.shape()
                        )));
                    }
                    if !x.dtype().is_float() {
                        return Err(err(format!(
                            "tensor {name:?}: expected a float dtype, found {}",
                            x.dtype()
                        )));
                    }
                    x.to_dtype(DType::F32)?.detach().contiguous()?.with_grad()
                };
                let a = take('A', [rank, inp])?;
                let b = take('B', [out, rank])?;
                pairs[t.index()] = Some(Pair { a, b });
            }
            layers.push(pairs);
        }
        if let Some(extra) = by_name.keys().next() {
            return Err(err(format!(
                "unexpected tensor {extra:?} ({} left over): the metadata's {META_TARGETS} {:?} in {} layers name no such tensor",
                by_name.len(),
                field(META_TARGETS, "")?,
                model.layers
            )));
        }
        let adapter = LoraAdapter {
            cfg,
            layers,
            model: model.clone(),
            training: false,
            rng: Mutex::new(Generator::new(0x4c6f_5241)),
        };
        for (_, _, p) in adapter.pairs() {
            let finite = |t: &Tensor| -> Result<bool> {
                Ok(t.to_vec::<f32>()?.iter().all(|v| v.is_finite()))
            };
            if !finite(&p.a)? || !finite(&p.b)? {
                return Err(err("a tensor holds NaN or infinity".into()));
            }
        }
        Ok(adapter)
    }

    /// `output + scale · dropout(input) Aᵀ Bᵀ` for `target` of layer `layer` (the output as it
    /// is when the target is not adapted).
    fn adjust(
        &self,
        layer: usize,
        target: LoraTarget,
        input: &Tensor,
        output: Tensor,
    ) -> Result<Tensor> {
        let Some(p) = self
            .layers
            .get(layer)
            .and_then(|l| l[target.index()].as_ref())
        else {
            return Ok(output);
        };
        let x = if self.training && self.cfg.dropout > 0.0 {
            let mut g = self
                .rng
                .lock()
                .map_err(|_| crate::error::op_err("lora", "dropout generator poisoned"))?;
            input.dropout_with(self.cfg.dropout, &mut g)?
        } else {
            input.clone()
        };
        output.add(&lora_delta(&x, &p.a, &p.b, self.cfg.scale())?)
    }

    /// One pre-norm decoder layer with the adapter's updates: the same operations as
    /// [`TransformerEncoderLayer::forward_masked`] with a causal mask, each adapted projection's
    /// output plus its update.
    pub(super) fn block(
        &self,
        layer: usize,
        b: &TransformerEncoderLayer,
        x: &Tensor,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        const ATTN: [LoraTarget; 4] = [
            LoraTarget::QProj,
            LoraTarget::KProj,
            LoraTarget::VProj,
            LoraTarget::OProj,
        ];
        let FeedForward::SwiGlu { w1, w2, w3 } = &b.ffn else {
            bail!("lora", "layer {layer}: expected a SwiGLU feed-forward");
        };
        if !b.norm_first {
            bail!("lora", "layer {layer}: expected a pre-norm layer");
        }
        let adjust = |which: usize, input: &Tensor, output: Tensor| {
            self.adjust(layer, ATTN[which], input, output)
        };
        let h = b.norm1.forward(x)?;
        let x = x.add(&b.self_attn.attend_adjusted(&h, cache, &adjust)?)?;
        let h = b.norm2.forward(&x)?;
        let gate = self.adjust(layer, LoraTarget::GateProj, &h, w1.forward(&h)?)?;
        let up = self.adjust(layer, LoraTarget::UpProj, &h, w3.forward(&h)?)?;
        let m = gate.silu()?.mul(&up)?;
        x.add(&self.adjust(layer, LoraTarget::DownProj, &m, w2.forward(&m)?)?)
    }

    /// `scale · B A` of `target` in `layer` (`[out, in]`), if adapted.
    fn update(&self, layer: usize, target: LoraTarget) -> Result<Option<Tensor>> {
        match self
            .layers
            .get(layer)
            .and_then(|l| l[target.index()].as_ref())
        {
            Some(p) => Ok(Some(
                p.b.detach()
                    .matmul(&p.a.detach())?
                    .mul_scalar(self.cfg.scale())?,
            )),
            None => Ok(None),
        }
    }
}

impl Llama {
    /// Applies `adapter` (replacing any other) on top of the weights, which stay as they are;
    /// the adapter's shapes must be this model's.
    pub fn set_lora(&mut self, adapter: LoraAdapter) -> Result<()> {
        let (m, c) = (&adapter.model, self.config());
        let same = (
            m.layers,
            m.hidden,
            m.intermediate,
            m.heads,
            m.kv_heads,
            m.head_dim,
        ) == (
            c.layers,
            c.hidden,
            c.intermediate,
            c.heads,
            c.kv_heads,
            c.head_dim,
        );
        if !same {
            bail!(
                "lora",
                "the adapter was made for {} layers of width {} (ff {}, {} kv heads), the model has {} of width {} (ff {}, {} kv heads)",
                m.layers, m.hidden, m.intermediate, m.kv_heads, c.layers, c.hidden, c.intermediate, c.kv_heads
            );
        }
        self.lora = Some(adapter);
        Ok(())
    }

    /// The adapter applied, if any.
    pub fn lora(&self) -> Option<&LoraAdapter> {
        self.lora.as_ref()
    }

    /// The adapter applied, mutably (to switch dropout on for training).
    pub fn lora_mut(&mut self) -> Option<&mut LoraAdapter> {
        self.lora.as_mut()
    }

    /// Removes the adapter and returns it: the model is the base model again.
    pub fn take_lora(&mut self) -> Option<LoraAdapter> {
        self.lora.take()
    }

    /// Folds the adapter into the weights (`W + scale · B A`) and removes it: the same outputs
    /// (to rounding), without the adapter's extra products. Without an adapter, nothing.
    pub fn merge_lora(&mut self) -> Result<()> {
        let Some(adapter) = self.lora.take() else {
            return Ok(());
        };
        let (d, kvd) = (
            self.config().hidden,
            self.config().kv_heads * self.config().head_dim,
        );
        let add = |w: &Tensor, u: Option<Tensor>| -> Result<Tensor> {
            match u {
                Some(u) => w.detach().add(&u),
                None => Ok(w.clone()),
            }
        };
        for (i, b) in self.blocks.iter_mut().enumerate() {
            let w = &b.self_attn.in_proj_weight;
            let q = add(&w.narrow(0, 0, d)?, adapter.update(i, LoraTarget::QProj)?)?;
            let k = add(&w.narrow(0, d, kvd)?, adapter.update(i, LoraTarget::KProj)?)?;
            let v = add(
                &w.narrow(0, d + kvd, kvd)?,
                adapter.update(i, LoraTarget::VProj)?,
            )?;
            b.self_attn.in_proj_weight = Tensor::cat(&[q, k, v], 0)?;
            let o = &mut b.self_attn.out_proj.weight;
            *o = add(o, adapter.update(i, LoraTarget::OProj)?)?;
            let FeedForward::SwiGlu { w1, w2, w3 } = &mut b.ffn else {
                bail!("lora", "layer {i}: expected a SwiGLU feed-forward");
            };
            w1.weight = add(&w1.weight, adapter.update(i, LoraTarget::GateProj)?)?;
            w3.weight = add(&w3.weight, adapter.update(i, LoraTarget::UpProj)?)?;
            w2.weight = add(&w2.weight, adapter.update(i, LoraTarget::DownProj)?)?;
        }
        Ok(())
    }
}
