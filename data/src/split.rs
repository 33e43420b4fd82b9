//! The reference leave-one-out split (docs/method.md §2.3).

/// Per user index: training prefix, validation item and test item.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// `seq[..n-2]` for `n >= 3`, else the whole sequence.
    pub train: Vec<Vec<u32>>,
    /// `seq[n-2]` for `n >= 3`.
    pub valid: Vec<Option<u32>>,
    /// `seq[n-1]` for `n >= 3`.
    pub test: Vec<Option<u32>>,
}

impl Split {
    /// Leave-one-out: with `n = len(seq)`, users with `n < 3` are train-only and never evaluated.
    pub fn leave_one_out(sequences: &[Vec<u32>]) -> Self {
        let mut split = Split {
            train: Vec::with_capacity(sequences.len()),
            valid: Vec::with_capacity(sequences.len()),
            test: Vec::with_capacity(sequences.len()),
        };
        for seq in sequences {
            let n = seq.len();
            if n < 3 {
                split.train.push(seq.clone());
                split.valid.push(None);
                split.test.push(None);
            } else {
                split.train.push(seq[..n - 2].to_vec());
                split.valid.push(Some(seq[n - 2]));
                split.test.push(Some(seq[n - 1]));
            }
        }
        split
    }

    /// User indices that are evaluated (those with a validation and a test item).
    pub fn evaluated_users(&self) -> Vec<usize> {
        (0..self.train.len())
            .filter(|&u| self.valid[u].is_some() && self.test[u].is_some())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_split() {
        let seqs = vec![vec![1], vec![1, 2], vec![1, 2, 3], vec![5, 4, 3, 2, 1]];
        let s = Split::leave_one_out(&seqs);
        assert_eq!(s.train, vec![vec![1], vec![1, 2], vec![1], vec![5, 4, 3]]);
        assert_eq!(s.valid, vec![None, None, Some(2), Some(2)]);
        assert_eq!(s.test, vec![None, None, Some(3), Some(1)]);
        assert_eq!(s.evaluated_users(), vec![2, 3]);
    }
}
