//! Parameter utilities shared by the model parts: copying a module with fresh parameter ids,
//! so that banks of adapters and projectors warm-started from one trained copy get independent
//! optimiser state.

use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;

/// A copy of `m` with the same values and fresh parameter ids; each parameter keeps whether it
/// requires gradients.
pub fn fork<M: Module>(m: &M) -> M {
    struct Fresh;
    impl ModuleMapper for Fresh {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let require_grad = param.is_require_grad();
            Param::from_tensor(param.val().detach()).set_require_grad(require_grad)
        }
    }
    m.clone().map(&mut Fresh)
}
