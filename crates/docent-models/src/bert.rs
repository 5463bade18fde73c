//! A BERT encoder (post-layer-norm, absolute positions, erf GELU) with mean pooling, over
//! packed sequences.
//!
//! The batch is never padded: the tokens of all its sequences are stacked into one
//! `tokens × hidden` matrix, so every linear layer is a single large matrix product with no
//! wasted rows, and attention runs per sequence on exactly its own tokens. This computes the
//! same function as a padded batch with an attention mask (masked keys get zero weight there),
//! without spending time on padding.

use std::path::Path;

use rayon::prelude::*;
use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;

use crate::LoadError;
use crate::bf16::{self, PackedWeights};
use crate::kernels::{self, MatMut, MatRef, NormParams, Parallelism};

/// The fields of `config.json` the encoder needs.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    pub hidden_act: String,
    #[serde(default)]
    pub position_embedding_type: Option<String>,
}

impl BertConfig {
    pub(crate) fn from_file(path: &Path) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
            path: path.to_owned(),
            source,
        })?;
        let cfg: Self = serde_json::from_str(&text).map_err(|e| LoadError::Invalid {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let invalid = |reason: String| LoadError::Invalid {
            path: path.to_owned(),
            reason,
        };
        if cfg.hidden_act != "gelu" {
            return Err(invalid(format!(
                "hidden_act {:?} is not supported (only \"gelu\")",
                cfg.hidden_act
            )));
        }
        if let Some(p) = &cfg.position_embedding_type
            && p != "absolute"
        {
            return Err(invalid(format!(
                "position_embedding_type {p:?} is not supported"
            )));
        }
        if cfg.num_attention_heads == 0 || !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads)
        {
            return Err(invalid(
                "hidden_size is not a multiple of num_attention_heads".into(),
            ));
        }
        if cfg.type_vocab_size == 0 || cfg.vocab_size == 0 || cfg.max_position_embeddings == 0 {
            return Err(invalid("empty vocabulary or position table".into()));
        }
        Ok(cfg)
    }
}

struct Linear {
    /// `[out, in]`, row-major, as PyTorch stores it; empty once packed to bf16.
    w: Vec<f32>,
    /// The weights in bf16, when the bf16 kernels are used.
    packed: Option<PackedWeights>,
    b: Vec<f32>,
    inp: usize,
    out: usize,
}

impl Linear {
    fn into_bf16(self) -> Self {
        Self {
            packed: Some(PackedWeights::pack(&self.w, self.out, self.inp)),
            w: Vec::new(),
            ..self
        }
    }
}

struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

struct Layer {
    /// Query, key and value fused into one `[3·hidden, hidden]` projection.
    qkv: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    ffn_in: Linear,
    ffn_out: Linear,
    ffn_norm: Norm,
}

/// The encoder's weights.
pub(crate) struct Bert {
    hidden: usize,
    heads: usize,
    eps: f32,
    max_positions: usize,
    vocab: usize,
    word: Vec<f32>,
    position: Vec<f32>,
    token_type0: Vec<f32>,
    emb_norm: Norm,
    layers: Vec<Layer>,
}

struct Weights<'a> {
    st: SafeTensors<'a>,
    path: &'a Path,
}

impl Weights<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, LoadError> {
        let invalid = |reason: String| LoadError::Invalid {
            path: self.path.to_owned(),
            reason,
        };
        let view = self
            .st
            .tensor(name)
            .or_else(|_| self.st.tensor(&format!("bert.{name}")))
            .map_err(|_| invalid(format!("tensor {name} is missing")))?;
        if view.shape() != shape {
            return Err(invalid(format!(
                "tensor {name} has shape {:?}, expected {shape:?}",
                view.shape()
            )));
        }
        let data = view.data();
        let out: Vec<f32> = match view.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => return Err(invalid(format!("tensor {name} has dtype {other:?}"))),
        };
        Ok(out)
    }

    fn linear(&self, prefix: &str, inp: usize, out: usize) -> Result<Linear, LoadError> {
        Ok(Linear {
            w: self.get(&format!("{prefix}.weight"), &[out, inp])?,
            packed: None,
            b: self.get(&format!("{prefix}.bias"), &[out])?,
            inp,
            out,
        })
    }

    fn norm(&self, prefix: &str, dim: usize) -> Result<Norm, LoadError> {
        Ok(Norm {
            gamma: self.get(&format!("{prefix}.weight"), &[dim])?,
            beta: self.get(&format!("{prefix}.bias"), &[dim])?,
        })
    }
}

impl Bert {
    /// Reads the weights from a safetensors file; with `use_bf16` (which needs
    /// [`bf16::available`]), the linear layers' weights are packed for the bf16 kernels.
    pub(crate) fn load(cfg: &BertConfig, path: &Path, use_bf16: bool) -> Result<Self, LoadError> {
        assert!(!use_bf16 || bf16::available());
        let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
            path: path.to_owned(),
            source,
        })?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| LoadError::Invalid {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let w = Weights { st, path };
        let h = cfg.hidden_size;
        let inter = cfg.intermediate_size;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let q = w.linear(&format!("{p}.attention.self.query"), h, h)?;
            let k = w.linear(&format!("{p}.attention.self.key"), h, h)?;
            let v = w.linear(&format!("{p}.attention.self.value"), h, h)?;
            let qkv = Linear {
                w: [q.w, k.w, v.w].concat(),
                packed: None,
                b: [q.b, k.b, v.b].concat(),
                inp: h,
                out: 3 * h,
            };
            let mut layer = Layer {
                qkv,
                attn_out: w.linear(&format!("{p}.attention.output.dense"), h, h)?,
                attn_norm: w.norm(&format!("{p}.attention.output.LayerNorm"), h)?,
                ffn_in: w.linear(&format!("{p}.intermediate.dense"), h, inter)?,
                ffn_out: w.linear(&format!("{p}.output.dense"), inter, h)?,
                ffn_norm: w.norm(&format!("{p}.output.LayerNorm"), h)?,
            };
            if use_bf16 {
                layer.qkv = layer.qkv.into_bf16();
                layer.attn_out = layer.attn_out.into_bf16();
                layer.ffn_in = layer.ffn_in.into_bf16();
                layer.ffn_out = layer.ffn_out.into_bf16();
            }
            layers.push(layer);
        }
        let token_type = w.get(
            "embeddings.token_type_embeddings.weight",
            &[cfg.type_vocab_size, h],
        )?;
        Ok(Self {
            hidden: h,
            heads: cfg.num_attention_heads,
            eps: cfg.layer_norm_eps as f32,
            max_positions: cfg.max_position_embeddings,
            vocab: cfg.vocab_size,
            word: w.get("embeddings.word_embeddings.weight", &[cfg.vocab_size, h])?,
            position: w.get(
                "embeddings.position_embeddings.weight",
                &[cfg.max_position_embeddings, h],
            )?,
            token_type0: token_type[..h].to_vec(),
            emb_norm: w.norm("embeddings.LayerNorm", h)?,
            layers,
        })
    }

    /// The width of the embeddings.
    pub(crate) fn hidden(&self) -> usize {
        self.hidden
    }

    /// The longest sequence the position table allows.
    pub(crate) fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// Mean-pooled, L2-normalised embeddings of `seqs` (token ids with their special tokens),
    /// `seqs.len() × hidden`, row-major. With `Parallelism::Rayon`, work is spread over the
    /// current rayon pool; with `None` it all runs on the calling thread.
    ///
    /// # Panics
    /// If a sequence is empty, longer than the position table, or holds an id outside the
    /// vocabulary (the caller's tokenizer guarantees none of these).
    pub(crate) fn embed(&self, seqs: &[&[u32]], par: Parallelism) -> Vec<f32> {
        let h = self.hidden;
        let mut offsets = Vec::with_capacity(seqs.len() + 1);
        offsets.push(0usize);
        for s in seqs {
            assert!(!s.is_empty() && s.len() <= self.max_positions);
            offsets.push(offsets.last().unwrap() + s.len());
        }
        let t = *offsets.last().unwrap();
        let ids: Vec<(u32, u32)> = seqs
            .iter()
            .flat_map(|s| s.iter().enumerate().map(|(p, &id)| (id, p as u32)))
            .collect();
        assert!(ids.iter().all(|&(id, _)| (id as usize) < self.vocab));

        let mut x = vec![0.0f32; t * h];
        let emb_norm = self.norm_params(&self.emb_norm);
        rows_mut(par, &mut x, h, |first, block| {
            for (i, row) in block.chunks_exact_mut(h).enumerate() {
                let (id, p) = ids[first + i];
                let word = &self.word[id as usize * h..][..h];
                let pos = &self.position[p as usize * h..][..h];
                for (((o, w), p), ty) in row.iter_mut().zip(word).zip(pos).zip(&self.token_type0) {
                    *o = w + p + ty;
                }
            }
            kernels::add_layer_norm_rows(block, &[], &emb_norm);
        });

        let inter = self.layers.first().map_or(0, |l| l.ffn_in.out);
        let mut qkv = vec![0.0f32; t * 3 * h];
        let mut ctx = vec![0.0f32; t * h];
        let mut tmp = vec![0.0f32; t * h];
        let mut mid = vec![0.0f32; t * inter];
        for layer in &self.layers {
            linear(&layer.qkv, &x, t, &mut qkv, par);
            self.attention(&qkv, &offsets, &mut ctx, par);
            linear(&layer.attn_out, &ctx, t, &mut tmp, par);
            self.add_norm(&mut x, &tmp, &layer.attn_norm, par);
            linear(&layer.ffn_in, &x, t, &mut mid, par);
            rows_mut(par, &mut mid, inter, |_, block| kernels::gelu(block));
            linear(&layer.ffn_out, &mid, t, &mut tmp, par);
            self.add_norm(&mut x, &tmp, &layer.ffn_norm, par);
        }

        let mut out = vec![0.0f32; seqs.len() * h];
        {
            for (s, o) in out.chunks_exact_mut(h).enumerate() {
                let rows = &x[offsets[s] * h..offsets[s + 1] * h];
                for row in rows.chunks_exact(h) {
                    for (a, v) in o.iter_mut().zip(row) {
                        *a += v;
                    }
                }
                // Mean pooling then L2 normalisation; the mean's scale cancels out, but keep
                // sentence-transformers' order of operations for fidelity.
                let n = (offsets[s + 1] - offsets[s]) as f32;
                for a in o.iter_mut() {
                    *a /= n;
                }
                let norm = o.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                for a in o.iter_mut() {
                    *a /= norm;
                }
            }
        }
        out
    }

    fn norm_params<'a>(&self, norm: &'a Norm) -> NormParams<'a> {
        NormParams {
            gamma: &norm.gamma,
            beta: &norm.beta,
            eps: self.eps,
        }
    }

    /// `x = LayerNorm(x + residual)`, row by row.
    fn add_norm(&self, x: &mut [f32], residual: &[f32], norm: &Norm, par: Parallelism) {
        let h = self.hidden;
        let p = self.norm_params(norm);
        rows_mut(par, x, h, |first, block| {
            let res = &residual[first * h..][..block.len()];
            kernels::add_layer_norm_rows(block, res, &p);
        });
    }

    /// Scaled dot-product attention of each sequence over its own tokens; `qkv` holds
    /// `[q | k | v]` per token, `ctx` receives the heads side by side.
    fn attention(&self, qkv: &[f32], offsets: &[usize], ctx: &mut [f32], par: Parallelism) {
        let h = self.hidden;
        let dh = h / self.heads;
        let scale = 1.0 / (dh as f32).sqrt();
        let mut parts = Vec::with_capacity(offsets.len() - 1);
        let mut rest = ctx;
        for w in offsets.windows(2) {
            let (head, tail) = rest.split_at_mut((w[1] - w[0]) * h);
            parts.push((w[0], w[1] - w[0], head));
            rest = tail;
        }
        let one = |(start, len, out): (usize, usize, &mut [f32])| {
            let base = &qkv[start * 3 * h..(start + len) * 3 * h];
            let mut scores = vec![0.0f32; len * len];
            for head in 0..self.heads {
                let q = MatRef::rows(&base[head * dh..], len, dh, 3 * h);
                let k = MatRef::rows(&base[h + head * dh..], len, dh, 3 * h);
                let v = MatRef::rows(&base[2 * h + head * dh..], len, dh, 3 * h);
                kernels::matmul(
                    MatMut::rows(&mut scores, len, len, len),
                    false,
                    q,
                    k.t(),
                    scale,
                    Parallelism::None,
                );
                kernels::softmax_rows(&mut scores, len);
                kernels::matmul(
                    MatMut::rows(&mut out[head * dh..], len, dh, h),
                    false,
                    MatRef::rows(&scores, len, len, len),
                    v,
                    1.0,
                    Parallelism::None,
                );
            }
        };
        match par {
            Parallelism::None => parts.into_iter().for_each(one),
            _ => parts.into_par_iter().for_each(one),
        }
    }
}

/// `out = x · Wᵀ + b` for `t` rows.
fn linear(lin: &Linear, x: &[f32], t: usize, out: &mut [f32], par: Parallelism) {
    let out = &mut out[..t * lin.out];
    for row in out.chunks_exact_mut(lin.out) {
        row.copy_from_slice(&lin.b);
    }
    if let Some(packed) = &lin.packed {
        debug_assert_eq!(packed.n(), lin.out);
        bf16::matmul_acc(out, &x[..t * lin.inp], t, packed, par);
        return;
    }
    kernels::matmul(
        MatMut::rows(out, t, lin.out, lin.out),
        true,
        MatRef::rows(&x[..t * lin.inp], t, lin.inp, lin.inp),
        MatRef::rows(&lin.w, lin.out, lin.inp, lin.inp).t(),
        1.0,
        par,
    );
}

/// Calls `f(first_row, block)` over blocks of whole rows, in parallel when asked.
fn rows_mut(
    par: Parallelism,
    data: &mut [f32],
    width: usize,
    f: impl Fn(usize, &mut [f32]) + Sync,
) {
    const BLOCK_ROWS: usize = 16;
    match par {
        Parallelism::None => f(0, data),
        _ => data
            .par_chunks_mut(width * BLOCK_ROWS)
            .enumerate()
            .for_each(|(i, block)| f(i * BLOCK_ROWS, block)),
    }
}
