//! SGD, Adam and AdamW written on tensors, with the numerics of `torch.optim`.
//!
//! tch's optimizers wrap libtorch's C++ ones, whose state cannot be read or written from
//! Rust, so a run could not resume exactly. Here the state is plain tensors:
//! [`Optimizer::state_tensors`] / [`Optimizer::load_state_tensors`] round-trip it through a
//! safetensors file, and a resumed run continues bit for bit.
//!
//! Each update replays the op sequence of PyTorch's single-tensor (`foreach=False`)
//! implementations, the ones `torch.optim` uses for CPU tensors, so results agree with
//! PyTorch to rounding (usually bitwise): tch exposes no `alpha`/`value` arguments, so
//! `x.add(y, alpha=a)` becomes `x.addcmul(y, a)` with a 0-dim tensor `a` (the kernels
//! compute `x + a·y` either way) and `addcmul(…, value=v)` / `addcdiv(…, value=v)` get
//! `v·t1` precomputed (the kernels round `v·t1` first, too).
//!
//! * SGD with momentum μ, dampening 0, optional Nesterov, coupled weight decay λ
//!   (Sutskever et al., ICML 2013): `g += λp; b = μb + g (b₁ = g); g = nesterov ? g + μb : b;
//!   p −= lr·g`.
//! * Adam (Kingma & Ba, ICLR 2015) with L2 weight decay added to the gradient, bias
//!   correction, and ε added *outside* the square root as torch does:
//!   `p −= lr/(1−β₁ᵗ) · m / (√v / √(1−β₂ᵗ) + ε)`.
//! * AdamW (Loshchilov & Hutter, ICLR 2019): Adam without the L2 term, and `p *= 1 − lr·λ`
//!   before the update.
//!
//! Parameters whose `.grad` is undefined are skipped and their state is untouched, as in
//! torch; [`Optimizer::zero_grad`] sets gradients to undefined (`set_to_none=True`, torch's
//! default), so parameters outside this step's graph are skipped rather than decayed.
//! Adam keeps a step count per parameter for the same reason.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use tch::{Kind, TchError, Tensor};

/// Errors of the optimizers (and of schedule validation). Messages name the key, field or
/// value at fault.
#[derive(Debug, thiserror::Error)]
pub enum OptimError {
    #[error("optimizer config: {field} = {value}: {reason}")]
    Config {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("lr schedule: {field} = {value}: {reason}")]
    Schedule {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("learning rate {0} passed to step(): must be finite and >= 0")]
    Lr(f64),
    #[error("parameter '{0}' is listed twice")]
    DuplicateParam(String),
    #[error("parameter '{name}' is {got}, expected {expected}: all parameters must share one device and one floating-point dtype")]
    MixedParams {
        name: String,
        got: String,
        expected: String,
    },
    #[error("optimizer state: missing key '{0}'")]
    MissingStateKey(String),
    #[error("optimizer state: unexpected key '{key}' for this optimizer ({kind:?}, {params} parameters); state saved by a different optimizer or model?")]
    UnknownStateKey {
        key: String,
        kind: OptimizerKind,
        params: usize,
    },
    #[error("optimizer state: '{key}' has shape {got:?}, expected {expected:?}")]
    StateShape {
        key: String,
        expected: Vec<i64>,
        got: Vec<i64>,
    },
    #[error("optimizer state: '{key}' has dtype {got:?}, expected {expected:?}")]
    StateKind {
        key: String,
        expected: Kind,
        got: Kind,
    },
    #[error("optimizer state: '{key}' = {value} is not a valid step count")]
    StateStep { key: String, value: i64 },
    #[error("torch: {0}")]
    Torch(#[from] TchError),
}

/// Which update rule.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Sgd,
    Adam,
    Adamw,
}

/// Hyper-parameters; fields that a kind does not use are ignored (`momentum`, `nesterov`
/// for Adam/AdamW; `betas`, `eps` for SGD). The learning rate is passed to each
/// [`Optimizer::step`] (so a schedule can drive it); `lr` here is the base rate for the
/// trainer's schedule and is only checked.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimConfig {
    pub kind: OptimizerKind,
    pub lr: f64,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub betas: (f64, f64),
    pub eps: f64,
}

impl OptimConfig {
    /// torch's defaults for `kind`: lr 1e-3, momentum 0, no Nesterov, betas (0.9, 0.999),
    /// eps 1e-8, weight decay 0 (SGD, Adam) or 1e-2 (AdamW).
    pub fn torch_defaults(kind: OptimizerKind) -> Self {
        Self {
            kind,
            lr: 1e-3,
            momentum: 0.0,
            nesterov: false,
            weight_decay: if kind == OptimizerKind::Adamw {
                1e-2
            } else {
                0.0
            },
            betas: (0.9, 0.999),
            eps: 1e-8,
        }
    }

    /// The checks torch's constructors make.
    pub fn validate(&self) -> Result<(), OptimError> {
        let bad = |field: &'static str, value: f64, reason: &'static str| {
            Err(OptimError::Config {
                field,
                value: value.to_string(),
                reason,
            })
        };
        let nonneg = |x: f64| x.is_finite() && x >= 0.0;
        if !nonneg(self.lr) {
            return bad("lr", self.lr, "must be finite and >= 0");
        }
        if !nonneg(self.weight_decay) {
            return bad("weight_decay", self.weight_decay, "must be finite and >= 0");
        }
        match self.kind {
            OptimizerKind::Sgd => {
                if !nonneg(self.momentum) {
                    return bad("momentum", self.momentum, "must be finite and >= 0");
                }
                if self.nesterov && self.momentum <= 0.0 {
                    return bad("momentum", self.momentum, "Nesterov needs momentum > 0");
                }
            }
            OptimizerKind::Adam | OptimizerKind::Adamw => {
                let beta = |b: f64| b.is_finite() && (0.0..1.0).contains(&b);
                if !beta(self.betas.0) {
                    return bad("betas[0]", self.betas.0, "must be in [0, 1)");
                }
                if !beta(self.betas.1) {
                    return bad("betas[1]", self.betas.1, "must be in [0, 1)");
                }
                if !nonneg(self.eps) {
                    return bad("eps", self.eps, "must be finite and >= 0");
                }
            }
        }
        Ok(())
    }
}

/// Per-parameter state; `None` until the parameter first gets a gradient (torch creates
/// state lazily too).
#[derive(Debug)]
struct Slot {
    name: String,
    param: Tensor,
    momentum_buffer: Option<Tensor>,
    /// (exp_avg, exp_avg_sq)
    moments: Option<(Tensor, Tensor)>,
    /// Adam steps taken by this parameter.
    step: u64,
}

/// SGD / Adam / AdamW over a fixed list of named parameters.
#[derive(Debug)]
pub struct Optimizer {
    cfg: OptimConfig,
    slots: Vec<Slot>,
    steps: u64,
    /// A libtorch optimizer over the same parameters, used only for `zero_grad`: it is the
    /// one tch API that resets a gradient to undefined rather than to zeros.
    grad_reset: tch::COptimizer,
}

const PREFIX: &str = "optim/";
const STEPS_KEY: &str = "optim/steps";

fn key(field: &str, name: &str) -> String {
    format!("{PREFIX}{field}/{name}")
}

/// `x` as a 0-dim tensor of `like`'s dtype and device: the rounded operand that a torch
/// kernel's `alpha` or `value` would be.
fn scalar_like(x: f64, like: &Tensor) -> Result<Tensor, TchError> {
    Tensor::f_scalar_tensor(x, (like.kind(), like.device()))
}

/// Detached deep copy, so saved or loaded state never aliases live tensors.
fn deep_copy(t: &Tensor) -> Result<Tensor, TchError> {
    t.f_detach_copy()
}

impl Optimizer {
    /// `params`: the trainable variables with their names (e.g. `VarStore::variables()`
    /// sorted by name). The tensors are shallow clones sharing storage with the model's.
    /// All must live on one device with one floating-point dtype.
    pub fn new(cfg: &OptimConfig, params: Vec<(String, Tensor)>) -> Result<Self, OptimError> {
        cfg.validate()?;
        let mut seen = BTreeSet::new();
        let mut grad_reset = tch::COptimizer::sgd(0.0, 0.0, 0.0, 0.0, false)?;
        let mut slots = Vec::with_capacity(params.len());
        let describe = |t: &Tensor| format!("{:?} on {:?}", t.kind(), t.device());
        for (name, param) in params {
            if !seen.insert(name.clone()) {
                return Err(OptimError::DuplicateParam(name));
            }
            let first: Option<&Slot> = slots.first();
            let expected = match first {
                Some(f) => format!("{} like '{}'", describe(&f.param), f.name),
                None => "a floating-point tensor".to_string(),
            };
            let same_layout = first.is_none_or(|f| {
                f.param.kind() == param.kind() && f.param.device() == param.device()
            });
            if !param.is_floating_point() || !same_layout {
                return Err(OptimError::MixedParams {
                    got: describe(&param),
                    name,
                    expected,
                });
            }
            grad_reset.add_parameters(&param, 0)?;
            slots.push(Slot {
                name,
                param,
                momentum_buffer: None,
                moments: None,
                step: 0,
            });
        }
        Ok(Self {
            cfg: cfg.clone(),
            slots,
            steps: 0,
            grad_reset,
        })
    }

    pub fn config(&self) -> &OptimConfig {
        &self.cfg
    }

    /// Number of completed [`step`](Self::step) calls (restored by
    /// [`load_state_tensors`](Self::load_state_tensors)).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Sets every parameter's gradient to undefined (torch's `zero_grad(set_to_none=True)`).
    pub fn zero_grad(&mut self) -> Result<(), OptimError> {
        self.grad_reset.zero_grad()?;
        Ok(())
    }

    /// One update with learning rate `lr`, in place and without recording autograd history.
    /// Parameters without a gradient are skipped.
    pub fn step(&mut self, lr: f64) -> Result<(), OptimError> {
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(OptimError::Lr(lr));
        }
        let cfg = self.cfg.clone();
        tch::no_grad(|| -> Result<(), OptimError> {
            for slot in &mut self.slots {
                let grad = slot.param.grad();
                if !grad.defined() {
                    continue;
                }
                match cfg.kind {
                    OptimizerKind::Sgd => sgd_update(slot, grad, &cfg, lr)?,
                    OptimizerKind::Adam | OptimizerKind::Adamw => {
                        adam_update(slot, grad, &cfg, lr)?
                    }
                }
            }
            Ok(())
        })?;
        self.steps += 1;
        Ok(())
    }

    /// Scales all gradients so that their joint 2-norm is at most `max_norm`, exactly like
    /// `torch.nn.utils.clip_grad_norm_(params, max_norm)`: total norm over the per-tensor
    /// norms, coefficient `min(max_norm / (norm + 1e-6), 1)` applied to every gradient
    /// (also when it is 1). Returns the total norm before clipping (0 without gradients;
    /// NaN/inf pass through, as with torch's `error_if_nonfinite=False`).
    pub fn clip_grad_norm(&self, max_norm: f64) -> Result<f64, OptimError> {
        tch::no_grad(|| -> Result<f64, OptimError> {
            let grads: Vec<Tensor> = self
                .slots
                .iter()
                .map(|s| s.param.grad())
                .filter(Tensor::defined)
                .collect();
            if grads.is_empty() {
                return Ok(0.0);
            }
            // `aten::norm` (p = 2, all dims) runs the `linalg_vector_norm` kernel torch uses.
            let norms = grads
                .iter()
                .map(Tensor::f_norm)
                .collect::<Result<Vec<_>, _>>()?;
            let total = Tensor::f_stack(&norms, 0)?.f_norm()?;
            // torch: `max_norm / (total + 1e-6)`, where `float / Tensor` is
            // `Tensor.__rtruediv__` = `reciprocal() * float`.
            let coef = total
                .f_add_scalar(1e-6)?
                .f_reciprocal()?
                .f_mul_scalar(max_norm)?
                .f_clamp_max(1.0)?;
            for mut g in grads {
                let _ = g.f_mul_(&coef)?;
            }
            Ok(total.f_double_value(&[])?)
        })
    }

    /// The optimizer state as named tensors (detached copies): `optim/steps` (0-dim i64) and,
    /// per parameter that has state, `optim/momentum_buffer/<name>` (SGD with momentum) or
    /// `optim/step/<name>` (0-dim i64), `optim/exp_avg/<name>`, `optim/exp_avg_sq/<name>`
    /// (Adam, AdamW). Every key starts with `optim/`, so the tensors can share a
    /// safetensors file with other state.
    pub fn state_tensors(&self) -> Result<Vec<(String, Tensor)>, OptimError> {
        let mut out = vec![(STEPS_KEY.to_string(), Tensor::from(self.steps as i64))];
        for s in &self.slots {
            if let Some(buf) = &s.momentum_buffer {
                out.push((key("momentum_buffer", &s.name), deep_copy(buf)?));
            }
            if let Some((m, v)) = &s.moments {
                out.push((key("step", &s.name), Tensor::from(s.step as i64)));
                out.push((key("exp_avg", &s.name), deep_copy(m)?));
                out.push((key("exp_avg_sq", &s.name), deep_copy(v)?));
            }
        }
        Ok(out)
    }

    /// Restores state written by [`state_tensors`](Self::state_tensors) for the same
    /// optimizer kind and parameter list. Keys not starting with `optim/` are ignored; an
    /// `optim/` key this optimizer does not expect, a partial per-parameter set, a shape or
    /// dtype mismatch is an error naming the key. On error the optimizer is unchanged.
    pub fn load_state_tensors(&mut self, tensors: &[(String, Tensor)]) -> Result<(), OptimError> {
        let mut by_key: BTreeMap<&str, &Tensor> = tensors
            .iter()
            .filter(|(k, _)| k.starts_with(PREFIX))
            .map(|(k, t)| (k.as_str(), t))
            .collect();
        let steps_t = by_key
            .remove(STEPS_KEY)
            .ok_or_else(|| OptimError::MissingStateKey(STEPS_KEY.into()))?;
        let steps = read_count(STEPS_KEY, steps_t)?;

        let fields: &[&str] = match self.cfg.kind {
            OptimizerKind::Sgd if self.cfg.momentum != 0.0 => &["momentum_buffer"],
            OptimizerKind::Sgd => &[],
            OptimizerKind::Adam | OptimizerKind::Adamw => &["step", "exp_avg", "exp_avg_sq"],
        };
        // Build everything first; commit only when all keys check out.
        let mut restored = Vec::with_capacity(self.slots.len());
        for s in &self.slots {
            let keys: Vec<String> = fields.iter().map(|f| key(f, &s.name)).collect();
            let found: Vec<Option<&Tensor>> =
                keys.iter().map(|k| by_key.remove(k.as_str())).collect();
            if found.iter().all(Option::is_none) {
                restored.push((None, None, 0));
                continue;
            }
            if let Some(i) = found.iter().position(Option::is_none) {
                return Err(OptimError::MissingStateKey(keys[i].clone()));
            }
            let like = |i: usize| -> Result<Tensor, OptimError> {
                let t = found[i].unwrap_or_else(|| unreachable!("checked above"));
                check_like(&keys[i], t, &s.param)?;
                Ok(deep_copy(t)?.f_to_device(s.param.device())?)
            };
            match self.cfg.kind {
                OptimizerKind::Sgd => restored.push((Some(like(0)?), None, 0)),
                OptimizerKind::Adam | OptimizerKind::Adamw => {
                    let step_t = found[0].unwrap_or_else(|| unreachable!("checked above"));
                    let step = read_count(&keys[0], step_t)?;
                    restored.push((None, Some((like(1)?, like(2)?)), step));
                }
            }
        }
        if let Some(k) = by_key.keys().next() {
            return Err(OptimError::UnknownStateKey {
                key: (*k).to_string(),
                kind: self.cfg.kind,
                params: self.slots.len(),
            });
        }
        for (s, (buf, moments, step)) in self.slots.iter_mut().zip(restored) {
            s.momentum_buffer = buf;
            s.moments = moments;
            s.step = step;
        }
        self.steps = steps;
        Ok(())
    }
}

fn read_count(key: &str, t: &Tensor) -> Result<u64, OptimError> {
    if t.numel() != 1 || !matches!(t.kind(), Kind::Int64 | Kind::Int) {
        return Err(OptimError::StateKind {
            key: key.into(),
            expected: Kind::Int64,
            got: t.kind(),
        });
    }
    let value = t.f_int64_value(&[])?;
    u64::try_from(value).map_err(|_| OptimError::StateStep {
        key: key.into(),
        value,
    })
}

fn check_like(key: &str, t: &Tensor, param: &Tensor) -> Result<(), OptimError> {
    if t.size() != param.size() {
        return Err(OptimError::StateShape {
            key: key.into(),
            expected: param.size(),
            got: t.size(),
        });
    }
    if t.kind() != param.kind() {
        return Err(OptimError::StateKind {
            key: key.into(),
            expected: param.kind(),
            got: t.kind(),
        });
    }
    Ok(())
}

/// torch `_single_tensor_sgd` with dampening 0.
fn sgd_update(slot: &mut Slot, grad: Tensor, cfg: &OptimConfig, lr: f64) -> Result<(), TchError> {
    let p = &mut slot.param;
    // grad = grad.add(param, alpha=weight_decay)
    let mut d_p = if cfg.weight_decay != 0.0 {
        grad.f_addcmul(p, &scalar_like(cfg.weight_decay, p)?)?
    } else {
        grad
    };
    if cfg.momentum != 0.0 {
        let buf = match slot.momentum_buffer {
            None => slot.momentum_buffer.insert(deep_copy(&d_p)?),
            Some(ref mut buf) => {
                // buf.mul_(momentum).add_(grad, alpha=1 - dampening), dampening = 0
                let _ = buf.f_mul_scalar_(cfg.momentum)?;
                let _ = buf.f_add_(&d_p)?;
                buf
            }
        };
        d_p = if cfg.nesterov {
            // grad = grad.add(buf, alpha=momentum)
            d_p.f_addcmul(buf, &scalar_like(cfg.momentum, buf)?)?
        } else {
            buf.shallow_clone()
        };
    }
    // param.add_(grad, alpha=-lr)
    let _ = p.f_addcmul_(&d_p, &scalar_like(-lr, p)?)?;
    Ok(())
}

/// torch `_single_tensor_adam` (amsgrad off, maximize off); AdamW when `cfg.kind` says so.
fn adam_update(slot: &mut Slot, grad: Tensor, cfg: &OptimConfig, lr: f64) -> Result<(), TchError> {
    let p = &mut slot.param;
    let (beta1, beta2) = cfg.betas;
    let (m, v) = match slot.moments {
        Some(ref mut mv) => mv,
        None => slot.moments.insert((p.f_zeros_like()?, p.f_zeros_like()?)),
    };
    slot.step += 1;
    let mut grad = grad;
    if cfg.weight_decay != 0.0 {
        if cfg.kind == OptimizerKind::Adamw {
            let _ = p.f_mul_scalar_(1.0 - lr * cfg.weight_decay)?;
        } else {
            // grad = grad.add(param, alpha=weight_decay)
            grad = grad.f_addcmul(p, &scalar_like(cfg.weight_decay, p)?)?;
        }
    }
    let _ = m.f_lerp_(&grad, 1.0 - beta1)?;
    // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    let _ = v.f_mul_scalar_(beta2)?;
    let _ = v.f_addcmul_(&grad.f_mul_scalar(1.0 - beta2)?, &grad)?;

    // Python floats: `beta ** step` and `bias_correction2 ** 0.5` are C `pow`. The 0.5 goes
    // through `black_box` so LLVM cannot turn `pow(x, 0.5)` into `sqrt(x)`, which may
    // differ in the last bit.
    let step = slot.step as f64;
    let bias_correction1 = 1.0 - beta1.powf(step);
    let bias_correction2 = 1.0 - beta2.powf(step);
    let step_size = lr / bias_correction1;
    let bias_correction2_sqrt = bias_correction2.powf(std::hint::black_box(0.5));
    // denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
    let mut denom = v.f_sqrt()?.f_div_scalar(bias_correction2_sqrt)?;
    let _ = denom.f_add_scalar_(cfg.eps)?;
    // param.addcdiv_(exp_avg, denom, value=-step_size)
    let _ = p.f_addcdiv_(&m.f_mul_scalar(-step_size)?, &denom)?;
    Ok(())
}
