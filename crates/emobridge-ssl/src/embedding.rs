//! One clip's hidden states and their per-layer pooling.

use candle_core::{DType, Tensor};

use crate::error::{InputError, Result};

/// Every hidden state of one clip: `hidden_states` [layers+1, frames, hidden], f32.
#[derive(Debug, Clone)]
pub struct ClipEmbedding {
    hidden_states: Tensor,
}

impl ClipEmbedding {
    /// Wraps a [states, frames, hidden] tensor (converted to f32 and moved to the CPU).
    pub fn new(hidden_states: Tensor) -> Result<Self> {
        if hidden_states.rank() != 3 {
            return Err(InputError::HiddenStatesShape {
                dims: hidden_states.dims().to_vec(),
            }
            .into());
        }
        Ok(ClipEmbedding {
            hidden_states: hidden_states
                .to_dtype(DType::F32)?
                .to_device(&candle_core::Device::Cpu)?,
        })
    }

    pub fn hidden_states(&self) -> &Tensor {
        &self.hidden_states
    }

    pub fn into_hidden_states(self) -> Tensor {
        self.hidden_states
    }

    /// Row-major f32 values and the [states, frames, hidden] shape.
    pub fn to_vec(&self) -> Result<(Vec<f32>, [usize; 3])> {
        let d = self.hidden_states.dims();
        Ok((
            self.hidden_states.flatten_all()?.to_vec1::<f32>()?,
            [d[0], d[1], d[2]],
        ))
    }

    pub fn num_states(&self) -> usize {
        self.hidden_states.dims()[0]
    }

    pub fn frames(&self) -> usize {
        self.hidden_states.dims()[1]
    }

    pub fn hidden_size(&self) -> usize {
        self.hidden_states.dims()[2]
    }

    /// Keeps only the given state indices (0 = transformer input, L = last layer), in order.
    pub fn select(&self, indices: &[usize]) -> Result<ClipEmbedding> {
        if let Some(bad) = indices.iter().find(|&&i| i >= self.num_states()) {
            return Err(InputError::StateOutOfRange {
                index: *bad,
                last: self.num_states() - 1,
            }
            .into());
        }
        let idx = Tensor::from_vec(
            indices.iter().map(|&i| i as u32).collect::<Vec<_>>(),
            indices.len(),
            self.hidden_states.device(),
        )?;
        Ok(ClipEmbedding {
            hidden_states: self.hidden_states.index_select(&idx, 0)?,
        })
    }

    /// Per-state mean and standard deviation over frames, each [states, hidden]. The standard
    /// deviation is the population one (divides by the frame count), so one frame gives 0.
    pub fn mean_std(&self) -> Result<(Tensor, Tensor)> {
        let mean = self.hidden_states.mean(1)?;
        let centred = self.hidden_states.broadcast_sub(&mean.unsqueeze(1)?)?;
        let std = centred.sqr()?.mean(1)?.sqrt()?;
        Ok((mean, std))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn pooling_is_over_frames_per_state() {
        // 2 states, 2 frames, 1 dim: state 0 = [1, 3], state 1 = [2, 2].
        let t = Tensor::new(&[[[1f32], [3.0]], [[2.0], [2.0]]], &Device::Cpu).unwrap();
        let (mean, std) = ClipEmbedding::new(t).unwrap().mean_std().unwrap();
        assert_eq!(
            mean.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            vec![2.0, 2.0]
        );
        assert_eq!(
            std.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            vec![1.0, 0.0]
        );
    }
}
