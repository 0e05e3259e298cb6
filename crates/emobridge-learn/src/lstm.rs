//! Stacked (bidirectional) LSTM regressors with a linear output layer, a hand-written forward
//! pass and back-propagation through time over plain slices.
//!
//! Conventions are PyTorch's `nn.LSTM`: gates in the order input, forget, cell, output;
//! `i = σ(W_ii x + b_ii + W_hi h + b_hi)`, …, `c' = f ⊙ c + i ⊙ g`, `h' = o ⊙ tanh(c')`; zero
//! initial states; a bidirectional layer concatenates `[h_forward, h_backward]`; the backward
//! direction of a sequence starts at its own last step (as a packed sequence). Each layer may
//! have its own width (the paper's 150 then 10 units), which one `nn.LSTM` cannot express: with
//! equal widths the saved tensors load straight into `nn.LSTM(num_layers=L)`; otherwise layer
//! `k` loads into its own one-layer `nn.LSTM` after renaming `_l{k}` to `_l0`.
//!
//! A batch holds sequences of different lengths, sorted longest first and laid out time-major
//! (`[time][slot][feature]`), so at every step the active sequences are a prefix of the batch;
//! padded positions stay zero and take no part in states, outputs or gradients.
//!
//! All parameters live in one flat vector (see [`LstmSpec::tensors`]) so optimisers and
//! gradient checks treat the network as one vector.

use serde::{Deserialize, Serialize};

use crate::kernels::{matmul, Scalar, View};
use crate::{LearnError, Result};

/// Shape of a stacked LSTM regressor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LstmSpec {
    /// Features per time step.
    pub input: usize,
    /// Units of each recurrent layer, bottom first (1–3 layers).
    pub hidden: Vec<usize>,
    pub bidirectional: bool,
    /// Linear outputs per time step (2 for arousal and valence jointly).
    pub outputs: usize,
}

/// One named tensor inside the flat parameter vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSlot {
    pub name: String,
    pub offset: usize,
    pub shape: Vec<usize>,
}

impl TensorSlot {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Offsets of one direction of one layer.
#[derive(Debug, Clone, Copy)]
struct CellSlots {
    input: usize,
    hidden: usize,
    w_ih: usize,
    w_hh: usize,
    b_ih: usize,
    b_hh: usize,
}

impl LstmSpec {
    /// Checks the shape: 1–3 layers, every size ≥ 1.
    pub fn validate(&self) -> Result<()> {
        if self.input == 0 || self.outputs == 0 {
            return Err(LearnError::Config(format!(
                "LSTM: input ({}) and outputs ({}) must be ≥ 1",
                self.input, self.outputs
            )));
        }
        if self.hidden.is_empty() || self.hidden.len() > 3 {
            return Err(LearnError::Config(format!(
                "LSTM: {} recurrent layers; 1 to 3 are supported",
                self.hidden.len()
            )));
        }
        if self.hidden.contains(&0) {
            return Err(LearnError::Config(format!(
                "LSTM: layer sizes {:?} must all be ≥ 1",
                self.hidden
            )));
        }
        Ok(())
    }

    pub fn directions(&self) -> usize {
        if self.bidirectional {
            2
        } else {
            1
        }
    }

    /// Width of layer `l`'s output (both directions).
    pub fn layer_width(&self, l: usize) -> usize {
        self.hidden[l] * self.directions()
    }

    fn layer_input(&self, l: usize) -> usize {
        if l == 0 {
            self.input
        } else {
            self.layer_width(l - 1)
        }
    }

    fn cells(&self) -> Vec<Vec<CellSlots>> {
        let mut offset = 0;
        let mut out = Vec::new();
        for l in 0..self.hidden.len() {
            let (i, h) = (self.layer_input(l), self.hidden[l]);
            let mut dirs = Vec::new();
            for _ in 0..self.directions() {
                let s = CellSlots {
                    input: i,
                    hidden: h,
                    w_ih: offset,
                    w_hh: offset + 4 * h * i,
                    b_ih: offset + 4 * h * i + 4 * h * h,
                    b_hh: offset + 4 * h * i + 4 * h * h + 4 * h,
                };
                offset += 4 * h * i + 4 * h * h + 8 * h;
                dirs.push(s);
            }
            out.push(dirs);
        }
        out
    }

    fn head_offset(&self) -> usize {
        (0..self.hidden.len())
            .map(|l| {
                let (i, h) = (self.layer_input(l), self.hidden[l]);
                self.directions() * (4 * h * i + 4 * h * h + 8 * h)
            })
            .sum()
    }

    /// Number of parameters.
    pub fn n_params(&self) -> usize {
        let d = self.layer_width(self.hidden.len() - 1);
        self.head_offset() + self.outputs * d + self.outputs
    }

    /// The named tensors with PyTorch's names: `weight_ih_l{k}`, `weight_hh_l{k}`,
    /// `bias_ih_l{k}`, `bias_hh_l{k}` (suffix `_reverse` for the backward direction), then the
    /// linear output layer `head.weight` [outputs, width], `head.bias` [outputs].
    pub fn tensors(&self) -> Vec<TensorSlot> {
        let mut v = Vec::new();
        for (l, dirs) in self.cells().iter().enumerate() {
            for (d, s) in dirs.iter().enumerate() {
                let sfx = if d == 1 { "_reverse" } else { "" };
                let h4 = 4 * s.hidden;
                v.push(TensorSlot {
                    name: format!("weight_ih_l{l}{sfx}"),
                    offset: s.w_ih,
                    shape: vec![h4, s.input],
                });
                v.push(TensorSlot {
                    name: format!("weight_hh_l{l}{sfx}"),
                    offset: s.w_hh,
                    shape: vec![h4, s.hidden],
                });
                v.push(TensorSlot {
                    name: format!("bias_ih_l{l}{sfx}"),
                    offset: s.b_ih,
                    shape: vec![h4],
                });
                v.push(TensorSlot {
                    name: format!("bias_hh_l{l}{sfx}"),
                    offset: s.b_hh,
                    shape: vec![h4],
                });
            }
        }
        let d = self.layer_width(self.hidden.len() - 1);
        let head = self.head_offset();
        v.push(TensorSlot {
            name: "head.weight".into(),
            offset: head,
            shape: vec![self.outputs, d],
        });
        v.push(TensorSlot {
            name: "head.bias".into(),
            offset: head + self.outputs * d,
            shape: vec![self.outputs],
        });
        v
    }
}

/// A batch of variable-length sequences, sorted longest first, time-major.
#[derive(Debug, Clone)]
pub struct SeqBatch<T> {
    /// `[t_max][slots][dim]`, zero where a sequence has ended.
    pub x: Vec<T>,
    pub dim: usize,
    /// Lengths per slot, non-increasing.
    pub lens: Vec<usize>,
    /// `order[slot]` = index of the sequence in the caller's list.
    pub order: Vec<usize>,
    pub t_max: usize,
}

impl<T: Scalar> SeqBatch<T> {
    /// Packs sequences given row-major `[len, dim]` (every length ≥ 1).
    pub fn new(seqs: &[&[T]], dim: usize) -> Result<Self> {
        if seqs.is_empty() || dim == 0 {
            return Err(LearnError::TooLittleData(
                "sequence batch: no sequences".into(),
            ));
        }
        for (i, s) in seqs.iter().enumerate() {
            if s.is_empty() || s.len() % dim != 0 {
                return Err(LearnError::Shape(format!(
                    "sequence {i}: {} values is not a whole number (≥ 1) of {dim}-dim steps",
                    s.len()
                )));
            }
        }
        let mut order: Vec<usize> = (0..seqs.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(seqs[i].len()));
        let lens: Vec<usize> = order.iter().map(|&i| seqs[i].len() / dim).collect();
        let (t_max, b) = (lens[0], seqs.len());
        let mut x = vec![T::zero(); t_max * b * dim];
        for (slot, &i) in order.iter().enumerate() {
            for (t, row) in seqs[i].chunks_exact(dim).enumerate() {
                x[(t * b + slot) * dim..(t * b + slot + 1) * dim].copy_from_slice(row);
            }
        }
        Ok(SeqBatch {
            x,
            dim,
            lens,
            order,
            t_max,
        })
    }

    pub fn slots(&self) -> usize {
        self.lens.len()
    }

    /// Active sequences at each time step (a prefix of the slots).
    fn active(&self) -> Vec<usize> {
        (0..self.t_max)
            .map(|t| self.lens.iter().take_while(|&&l| l > t).count())
            .collect()
    }

    /// Splits time-major outputs `[t_max][slots][width]` back into per-sequence row-major
    /// blocks in the caller's order.
    pub fn unpack(&self, y: &[T], width: usize) -> Vec<Vec<T>> {
        let b = self.slots();
        let mut out = vec![Vec::new(); b];
        for (slot, &i) in self.order.iter().enumerate() {
            let mut v = Vec::with_capacity(self.lens[slot] * width);
            for t in 0..self.lens[slot] {
                v.extend_from_slice(&y[(t * b + slot) * width..(t * b + slot + 1) * width]);
            }
            out[i] = v;
        }
        out
    }

    /// The inverse of [`SeqBatch::unpack`] for per-sequence `[len, width]` blocks (e.g. output
    /// gradients), zero at padded positions.
    pub fn pack(&self, per_seq: &[Vec<T>], width: usize) -> Vec<T> {
        let b = self.slots();
        let mut y = vec![T::zero(); self.t_max * b * width];
        for (slot, &i) in self.order.iter().enumerate() {
            for t in 0..self.lens[slot] {
                y[(t * b + slot) * width..(t * b + slot + 1) * width]
                    .copy_from_slice(&per_seq[i][t * width..(t + 1) * width]);
            }
        }
        y
    }
}

/// What the forward pass keeps for the backward pass.
pub struct LstmTrace<T> {
    /// Per layer: its output `[t][slot][width]`.
    outputs: Vec<Vec<T>>,
    /// Per layer and direction: gate activations `[t][slot][4H]` (i, f, g, o).
    gates: Vec<Vec<Vec<T>>>,
    /// Per layer and direction: cell states `[t][slot][H]`.
    cells: Vec<Vec<Vec<T>>>,
    active: Vec<usize>,
    /// Network outputs `[t][slot][outputs]`, zero at padded positions.
    pub y: Vec<T>,
}

/// A stacked LSTM regressor: its shape and its flat parameter vector.
#[derive(Debug, Clone, PartialEq)]
pub struct LstmNet<T> {
    pub spec: LstmSpec,
    pub params: Vec<T>,
}

impl<T: Scalar> LstmNet<T> {
    /// PyTorch's initialisation: every weight and bias uniform in ±1/√H (the head: ±1/√width).
    pub fn new(spec: LstmSpec, rng: &mut impl rand::Rng) -> Result<Self> {
        spec.validate()?;
        let mut params = vec![T::zero(); spec.n_params()];
        for slot in spec.tensors() {
            let fan = if slot.name.starts_with("head") {
                spec.layer_width(spec.hidden.len() - 1)
            } else {
                slot.shape[0] / 4
            };
            let bound = 1.0 / (fan as f64).sqrt();
            for p in &mut params[slot.offset..slot.offset + slot.len()] {
                *p = T::lit(rng.random_range(-bound..bound));
            }
        }
        Ok(LstmNet { spec, params })
    }

    /// A network from given parameters (length checked).
    pub fn from_params(spec: LstmSpec, params: Vec<T>) -> Result<Self> {
        spec.validate()?;
        if params.len() != spec.n_params() {
            return Err(LearnError::Shape(format!(
                "LSTM: {} parameters given, the shape needs {}",
                params.len(),
                spec.n_params()
            )));
        }
        Ok(LstmNet { spec, params })
    }

    /// Forward pass over a batch, keeping what the backward pass needs.
    pub fn forward(&self, batch: &SeqBatch<T>) -> Result<LstmTrace<T>> {
        if batch.dim != self.spec.input {
            return Err(LearnError::Shape(format!(
                "LSTM expects {} features per step, the batch has {}",
                self.spec.input, batch.dim
            )));
        }
        let (tm, b) = (batch.t_max, batch.slots());
        let active = batch.active();
        let cells = self.spec.cells();
        let mut outputs: Vec<Vec<T>> = Vec::new();
        let mut gates_all = Vec::new();
        let mut cells_all = Vec::new();
        for (l, dirs) in cells.iter().enumerate() {
            let x = if l == 0 { &batch.x } else { &outputs[l - 1] };
            let width = self.spec.layer_width(l);
            let mut out = vec![T::zero(); tm * b * width];
            let mut gl = Vec::new();
            let mut cl = Vec::new();
            for (d, s) in dirs.iter().enumerate() {
                let (g, c) = self.cell_forward(s, d == 1, x, &mut out, width, d, tm, b, &active);
                gl.push(g);
                cl.push(c);
            }
            gates_all.push(gl);
            cells_all.push(cl);
            outputs.push(out);
        }
        let y = self.head_forward(outputs.last().expect("≥ 1 layer"), tm, b, &active);
        Ok(LstmTrace {
            outputs,
            gates: gates_all,
            cells: cells_all,
            active,
            y,
        })
    }

    /// Predictions for a batch, per sequence `[len, outputs]` row-major, in the caller's order.
    pub fn predict(&self, batch: &SeqBatch<T>) -> Result<Vec<Vec<T>>> {
        let trace = self.forward(batch)?;
        Ok(batch.unpack(&trace.y, self.spec.outputs))
    }

    /// One direction of one layer forward; with AVX2 and FMA present (checked at run time) the
    /// same code compiled for them, so the gate activations run 8 lanes wide.
    #[allow(clippy::too_many_arguments)]
    fn cell_forward(
        &self,
        s: &CellSlots,
        reverse: bool,
        x: &[T],
        out: &mut [T],
        width: usize,
        d: usize,
        tm: usize,
        b: usize,
        active: &[usize],
    ) -> (Vec<T>, Vec<T>) {
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::has_avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            return unsafe { self.cell_forward_avx2(s, reverse, x, out, width, d, tm, b, active) };
        }
        self.cell_forward_impl(s, reverse, x, out, width, d, tm, b, active)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn cell_forward_avx2(
        &self,
        s: &CellSlots,
        reverse: bool,
        x: &[T],
        out: &mut [T],
        width: usize,
        d: usize,
        tm: usize,
        b: usize,
        active: &[usize],
    ) -> (Vec<T>, Vec<T>) {
        self.cell_forward_impl(s, reverse, x, out, width, d, tm, b, active)
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn cell_forward_impl(
        &self,
        s: &CellSlots,
        reverse: bool,
        x: &[T],
        out: &mut [T],
        width: usize,
        d: usize,
        tm: usize,
        b: usize,
        active: &[usize],
    ) -> (Vec<T>, Vec<T>) {
        let (h, i_dim) = (s.hidden, s.input);
        let h4 = 4 * h;
        let p = &self.params;
        let (w_ih, w_hh) = (&p[s.w_ih..s.w_ih + h4 * i_dim], &p[s.w_hh..s.w_hh + h4 * h]);
        let (b_ih, b_hh) = (&p[s.b_ih..s.b_ih + h4], &p[s.b_hh..s.b_hh + h4]);
        // Both biases, then the input projections of every step at once (one GEMM) added on.
        let bias: Vec<T> = b_ih.iter().zip(b_hh).map(|(a, c)| *a + *c).collect();
        let mut gates = Vec::with_capacity(tm * b * h4);
        for t in 0..tm {
            let n = active[t];
            for _ in 0..n {
                gates.extend_from_slice(&bias);
            }
            gates.resize((t + 1) * b * h4, T::zero());
        }
        matmul(
            tm * b,
            h4,
            i_dim,
            &mut gates,
            h4,
            true,
            View::rows(x, i_dim),
            View::transposed(w_ih, i_dim),
        );
        // W_hhᵀ [h, 4h] row-major once, so the per-step product reads it contiguously.
        let mut w_hh_t = vec![T::zero(); h * h4];
        for g in 0..h4 {
            for k in 0..h {
                w_hh_t[k * h4 + g] = w_hh[g * h + k];
            }
        }
        let mut cell = vec![T::zero(); tm * b * h];
        let mut c_prev = vec![T::zero(); h];
        for step in 0..tm {
            let t = if reverse { tm - 1 - step } else { step };
            let n = active[t];
            if n == 0 {
                continue;
            }
            let prev = if reverse {
                (t + 1 < tm).then_some(t + 1)
            } else {
                t.checked_sub(1)
            };
            let row0 = t * b;
            if let Some(tp) = prev {
                let (hp, _) = out.split_at(tp * b * width + b * width);
                let hp = &hp[tp * b * width + d * h..];
                matmul(
                    n,
                    h4,
                    h,
                    &mut gates[row0 * h4..(row0 + n) * h4],
                    h4,
                    true,
                    View::strided(hp, width),
                    View::rows(&w_hh_t, h4),
                );
            }
            for slot in 0..n {
                let r = row0 + slot;
                let g = &mut gates[r * h4..(r + 1) * h4];
                // Pre-activations (biases already in) → activations, gate block by gate block
                // (vectorises).
                let (ifg, go) = g.split_at_mut(2 * h);
                let (gg, og) = go.split_at_mut(h);
                ifg.iter_mut().for_each(|v| *v = v.sigmoid_act());
                gg.iter_mut().for_each(|v| *v = v.tanh_act());
                og.iter_mut().for_each(|v| *v = v.sigmoid_act());
                let (ig, fg) = ifg.split_at(h);
                match prev {
                    Some(tp) => {
                        c_prev.copy_from_slice(&cell[(tp * b + slot) * h..(tp * b + slot + 1) * h])
                    }
                    None => c_prev.fill(T::zero()),
                }
                let c = &mut cell[r * h..(r + 1) * h];
                let hout = &mut out[r * width + d * h..r * width + d * h + h];
                // Equal lengths made visible to the optimiser: no bounds checks, vector code.
                let (ig, fg, gg, og, cp) = (&ig[..h], &fg[..h], &gg[..h], &og[..h], &c_prev[..h]);
                let (c, hout) = (&mut c[..h], &mut hout[..h]);
                for j in 0..h {
                    let cj = fg[j] * cp[j] + ig[j] * gg[j];
                    c[j] = cj;
                    hout[j] = og[j] * cj.tanh_act();
                }
            }
        }
        (gates, cell)
    }

    fn head_forward(&self, top: &[T], tm: usize, b: usize, active: &[usize]) -> Vec<T> {
        let o = self.spec.outputs;
        let width = self.spec.layer_width(self.spec.hidden.len() - 1);
        let head = self.spec.head_offset();
        let w = &self.params[head..head + o * width];
        let bias = &self.params[head + o * width..head + o * width + o];
        let mut y = vec![T::zero(); tm * b * o];
        matmul(
            tm * b,
            o,
            width,
            &mut y,
            o,
            false,
            View::rows(top, width),
            View::transposed(w, width),
        );
        for t in 0..tm {
            for slot in 0..b {
                let r = (t * b + slot) * o;
                for k in 0..o {
                    y[r + k] = if slot < active[t] {
                        y[r + k] + bias[k]
                    } else {
                        T::zero()
                    };
                }
            }
        }
        y
    }

    /// Back-propagation through time: the gradient of a loss with respect to every parameter,
    /// given `dy` = ∂loss/∂y `[t][slot][outputs]` (ignored at padded positions). Adds into
    /// `grad` (length [`LstmSpec::n_params`]).
    pub fn backward(
        &self,
        batch: &SeqBatch<T>,
        trace: &LstmTrace<T>,
        dy: &[T],
        grad: &mut [T],
    ) -> Result<()> {
        let (tm, b, o) = (batch.t_max, batch.slots(), self.spec.outputs);
        if dy.len() != tm * b * o || grad.len() != self.spec.n_params() {
            return Err(LearnError::Shape(format!(
                "LSTM backward: {} output gradients for {tm}×{b}×{o}, {} gradient slots for {}",
                dy.len(),
                grad.len(),
                self.spec.n_params()
            )));
        }
        let active = &trace.active;
        // Zero the padded positions so they cannot leak.
        let mut dy = dy.to_vec();
        for t in 0..tm {
            dy[(t * b + active[t]) * o..(t + 1) * b * o].fill(T::zero());
        }
        let layers = self.spec.hidden.len();
        let width = self.spec.layer_width(layers - 1);
        let head = self.spec.head_offset();
        let top = &trace.outputs[layers - 1];
        {
            let (gw, gb) = grad[head..head + o * width + o].split_at_mut(o * width);
            matmul(
                o,
                width,
                tm * b,
                gw,
                width,
                true,
                View::transposed(&dy, o),
                View::rows(top, width),
            );
            for row in dy.chunks_exact(o) {
                for k in 0..o {
                    gb[k] = gb[k] + row[k];
                }
            }
        }
        let w_out = &self.params[head..head + o * width];
        let mut d_out = vec![T::zero(); tm * b * width];
        matmul(
            tm * b,
            width,
            o,
            &mut d_out,
            width,
            false,
            View::rows(&dy, o),
            View::rows(w_out, width),
        );
        let cells = self.spec.cells();
        for l in (0..layers).rev() {
            let x = if l == 0 {
                &batch.x
            } else {
                &trace.outputs[l - 1]
            };
            let i_dim = self.spec.layer_input(l);
            let width = self.spec.layer_width(l);
            let mut d_x = if l > 0 {
                vec![T::zero(); tm * b * i_dim]
            } else {
                Vec::new()
            };
            for (d, s) in cells[l].iter().enumerate() {
                self.cell_backward(
                    s,
                    d,
                    x,
                    &trace.outputs[l],
                    width,
                    &trace.gates[l][d],
                    &trace.cells[l][d],
                    &d_out,
                    (l > 0).then_some(&mut d_x),
                    grad,
                    tm,
                    b,
                    active,
                );
            }
            d_out = d_x;
        }
        Ok(())
    }

    /// One direction of one layer backward; with AVX2 and FMA present (checked at run time)
    /// the same code compiled for them (see [`LstmNet::cell_forward`]).
    #[allow(clippy::too_many_arguments)]
    fn cell_backward(
        &self,
        s: &CellSlots,
        d: usize,
        x: &[T],
        out: &[T],
        width: usize,
        gates: &[T],
        cell: &[T],
        d_out: &[T],
        d_x: Option<&mut Vec<T>>,
        grad: &mut [T],
        tm: usize,
        b: usize,
        active: &[usize],
    ) {
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::has_avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            return unsafe {
                self.cell_backward_avx2(
                    s, d, x, out, width, gates, cell, d_out, d_x, grad, tm, b, active,
                )
            };
        }
        self.cell_backward_impl(
            s, d, x, out, width, gates, cell, d_out, d_x, grad, tm, b, active,
        )
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn cell_backward_avx2(
        &self,
        s: &CellSlots,
        d: usize,
        x: &[T],
        out: &[T],
        width: usize,
        gates: &[T],
        cell: &[T],
        d_out: &[T],
        d_x: Option<&mut Vec<T>>,
        grad: &mut [T],
        tm: usize,
        b: usize,
        active: &[usize],
    ) {
        self.cell_backward_impl(
            s, d, x, out, width, gates, cell, d_out, d_x, grad, tm, b, active,
        )
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn cell_backward_impl(
        &self,
        s: &CellSlots,
        d: usize,
        x: &[T],
        out: &[T],
        width: usize,
        gates: &[T],
        cell: &[T],
        d_out: &[T],
        d_x: Option<&mut Vec<T>>,
        grad: &mut [T],
        tm: usize,
        b: usize,
        active: &[usize],
    ) {
        let reverse = d == 1;
        let (h, i_dim) = (s.hidden, s.input);
        let h4 = 4 * h;
        let w_ih = &self.params[s.w_ih..s.w_ih + h4 * i_dim];
        let w_hh = &self.params[s.w_hh..s.w_hh + h4 * h];
        let mut da = vec![T::zero(); tm * b * h4];
        let mut dh_rec = vec![T::zero(); b * h];
        let mut dc_next = vec![T::zero(); b * h];
        let zeros = vec![T::zero(); h];
        let one = T::one();
        for step in 0..tm {
            // The forward pass's order, reversed.
            let t = if reverse { step } else { tm - 1 - step };
            let n = active[t];
            if n == 0 {
                continue;
            }
            let prev = if reverse {
                (t + 1 < tm).then_some(t + 1)
            } else {
                t.checked_sub(1)
            };
            let row0 = t * b;
            for slot in 0..n {
                let r = row0 + slot;
                let g = &gates[r * h4..(r + 1) * h4];
                let (ig, rest) = g.split_at(h);
                let (fg, rest) = rest.split_at(h);
                let (gg, og) = rest.split_at(h);
                let a = &mut da[r * h4..(r + 1) * h4];
                let (ai, rest) = a.split_at_mut(h);
                let (af, rest) = rest.split_at_mut(h);
                let (ag, ao) = rest.split_at_mut(h);
                let c = &cell[r * h..(r + 1) * h];
                let c_prev = match prev {
                    Some(tp) => &cell[(tp * b + slot) * h..(tp * b + slot + 1) * h],
                    None => &zeros[..],
                };
                let dout = &d_out[r * width + d * h..r * width + d * h + h];
                let dhr = &dh_rec[slot * h..(slot + 1) * h];
                let dcn = &mut dc_next[slot * h..(slot + 1) * h];
                // Equal lengths made visible to the optimiser: no bounds checks, vector code.
                let (ig, fg, gg, og) = (&ig[..h], &fg[..h], &gg[..h], &og[..h]);
                let (ai, af, ag, ao) = (&mut ai[..h], &mut af[..h], &mut ag[..h], &mut ao[..h]);
                let (c, c_prev, dout, dhr, dcn) =
                    (&c[..h], &c_prev[..h], &dout[..h], &dhr[..h], &mut dcn[..h]);
                for j in 0..h {
                    let dh = dout[j] + dhr[j];
                    let tc = c[j].tanh_act();
                    let dc = dh * og[j] * (one - tc * tc) + dcn[j];
                    dcn[j] = dc * fg[j];
                    ai[j] = dc * gg[j] * ig[j] * (one - ig[j]);
                    af[j] = dc * c_prev[j] * fg[j] * (one - fg[j]);
                    ag[j] = dc * ig[j] * (one - gg[j] * gg[j]);
                    ao[j] = dh * tc * og[j] * (one - og[j]);
                }
            }
            // Gradient into the previous step's hidden state (none before the first step).
            if prev.is_some() {
                matmul(
                    n,
                    h,
                    h4,
                    &mut dh_rec[..n * h],
                    h,
                    false,
                    View::rows(&da[row0 * h4..(row0 + n) * h4], h4),
                    View::rows(w_hh, h),
                );
            }
        }
        // Weight gradients over all steps at once.
        let (g_ih, rest) = grad[s.w_ih..].split_at_mut(h4 * i_dim);
        matmul(
            h4,
            i_dim,
            tm * b,
            g_ih,
            i_dim,
            true,
            View::transposed(&da, h4),
            View::rows(x, i_dim),
        );
        if tm > 1 {
            // Σ_t dA_t · h_prev(t)ᵀ: forward pairs (t, t−1), backward pairs (t, t+1).
            let (da_part, h_part) = if reverse {
                (&da[..(tm - 1) * b * h4], &out[b * width + d * h..])
            } else {
                (&da[b * h4..], &out[d * h..])
            };
            matmul(
                h4,
                h,
                (tm - 1) * b,
                &mut rest[..h4 * h],
                h,
                true,
                View::transposed(da_part, h4),
                View::strided(h_part, width),
            );
        }
        // Both bias gradients are Σ dA over all steps and slots (padded rows are zero).
        let mut db = vec![T::zero(); h4];
        for row in da.chunks_exact(h4) {
            for (acc, v) in db.iter_mut().zip(row) {
                *acc = *acc + *v;
            }
        }
        let (gb_ih, gb_hh) = grad[s.b_ih..s.b_ih + 2 * h4].split_at_mut(h4);
        for ((gi, gh), v) in gb_ih.iter_mut().zip(gb_hh.iter_mut()).zip(&db) {
            *gi = *gi + *v;
            *gh = *gh + *v;
        }
        if let Some(d_x) = d_x {
            matmul(
                tm * b,
                i_dim,
                h4,
                d_x,
                i_dim,
                true,
                View::rows(&da, h4),
                View::rows(w_ih, i_dim),
            );
        }
    }
}

impl LstmNet<f32> {
    /// Writes the weights as safetensors (F32) with PyTorch's names and the shape in the
    /// metadata (`input`, `hidden`, `bidirectional`, `outputs`).
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        let slots = self.spec.tensors();
        let bytes: Vec<Vec<u8>> = slots
            .iter()
            .map(|s| {
                self.params[s.offset..s.offset + s.len()]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect()
            })
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = slots
            .iter()
            .zip(&bytes)
            .map(|(s, b)| {
                let v = safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    s.shape.clone(),
                    b,
                )
                .map_err(|e| LearnError::Weights(format!("tensor {}: {e}", s.name)));
                v.map(|v| (s.name.clone(), v))
            })
            .collect::<Result<_>>()?;
        let mut meta = std::collections::HashMap::new();
        meta.insert("input".to_string(), self.spec.input.to_string());
        meta.insert(
            "hidden".to_string(),
            self.spec
                .hidden
                .iter()
                .map(|h| h.to_string())
                .collect::<Vec<_>>()
                .join(","),
        );
        meta.insert(
            "bidirectional".to_string(),
            self.spec.bidirectional.to_string(),
        );
        meta.insert("outputs".to_string(), self.spec.outputs.to_string());
        meta.insert("gate_order".to_string(), "i,f,g,o (PyTorch)".to_string());
        safetensors::serialize(views, Some(meta))
            .map_err(|e| LearnError::Weights(format!("serialising LSTM weights: {e}")))
    }

    /// Reads weights written by [`LstmNet::to_safetensors`] (or by PyTorch with the same
    /// names) for a given shape.
    pub fn from_safetensors(spec: LstmSpec, bytes: &[u8]) -> Result<Self> {
        spec.validate()?;
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| LearnError::Weights(format!("not a safetensors file: {e}")))?;
        let mut params = vec![0.0f32; spec.n_params()];
        for s in spec.tensors() {
            let t = st.tensor(&s.name).map_err(|_| LearnError::MissingTensor {
                name: s.name.clone(),
            })?;
            if t.shape() != s.shape.as_slice() || t.dtype() != safetensors::Dtype::F32 {
                return Err(LearnError::Weights(format!(
                    "weights: `{}` is {:?} {:?}, expected F32 {:?}",
                    s.name,
                    t.dtype(),
                    t.shape(),
                    s.shape
                )));
            }
            for (p, c) in params[s.offset..s.offset + s.len()]
                .iter_mut()
                .zip(t.data().chunks_exact(4))
            {
                *p = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        LstmNet::from_params(spec, params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng() -> rand_chacha::ChaCha8Rng {
        rand_chacha::ChaCha8Rng::seed_from_u64(3)
    }

    #[test]
    fn rejects_bad_shapes() {
        let bad = LstmSpec {
            input: 3,
            hidden: vec![],
            bidirectional: false,
            outputs: 2,
        };
        assert!(LstmNet::<f32>::new(bad, &mut rng())
            .unwrap_err()
            .to_string()
            .contains("1 to 3"));
        assert!(SeqBatch::<f32>::new(&[&[1.0, 2.0, 3.0]], 2).is_err());
    }

    #[test]
    fn padding_does_not_change_a_sequence_output() {
        let spec = LstmSpec {
            input: 3,
            hidden: vec![4, 2],
            bidirectional: true,
            outputs: 2,
        };
        let net = LstmNet::<f64>::new(spec, &mut rng()).unwrap();
        let long: Vec<f64> = (0..21).map(|v| (v as f64 * 0.37).sin()).collect();
        let short: Vec<f64> = (0..9).map(|v| (v as f64 * 0.91).cos()).collect();
        let alone = net
            .predict(&SeqBatch::new(&[&short[..]], 3).unwrap())
            .unwrap();
        let both = net
            .predict(&SeqBatch::new(&[&short[..], &long[..]], 3).unwrap())
            .unwrap();
        assert_eq!(both[0].len(), 3 * 2);
        for (a, b) in alone[0].iter().zip(&both[0]) {
            assert!((a - b).abs() < 1e-14);
        }
    }

    #[test]
    fn safetensors_round_trip() {
        let spec = LstmSpec {
            input: 2,
            hidden: vec![3],
            bidirectional: true,
            outputs: 1,
        };
        let net = LstmNet::<f32>::new(spec.clone(), &mut rng()).unwrap();
        let back = LstmNet::from_safetensors(spec, &net.to_safetensors().unwrap()).unwrap();
        assert_eq!(back, net);
        let other = LstmSpec {
            input: 2,
            hidden: vec![4],
            bidirectional: true,
            outputs: 1,
        };
        assert!(
            LstmNet::from_safetensors(other, &net.to_safetensors().unwrap())
                .unwrap_err()
                .to_string()
                .contains("weight_ih_l0")
        );
    }
}
