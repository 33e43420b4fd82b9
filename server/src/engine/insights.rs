//! What describes a run's user groups, computed once when the run is opened: each group's
//! size, centroid and metrics under its own table and (PerPEFT) under the global model, the
//! items and categories most over-represented in its training interactions (lift), the items
//! its adapter promotes or demotes most against the global model, and 2-D maps of every user
//! (PCA of the grouping representation, and t-SNE of it on request).

use ndarray::Array2;
use shared::ItemTable;
use shared::api::Metrics;
use shared::groups::Grouping;

use crate::data::{Dataset, Split};
use crate::error::{Error, Result};
use crate::eval::{Phase, evaluate_grouped};
use crate::store::LoadedModel;

/// Least training interactions for an item or category to be called distinctive.
pub const MIN_COUNT: usize = 5;
/// Distinctive items and categories kept per group.
pub const TOP_LIFT: usize = 10;
/// Promoted and demoted items kept per group.
pub const TOP_SHIFT: usize = 5;
/// A promoted item must be in the group's top this many; a demoted one in the global top.
pub const SHIFT_POOL: usize = 50;

/// What is over-represented in a group, by key (an item id or a category).
#[derive(Debug, Clone, PartialEq)]
pub struct Lift<K> {
    pub key: K,
    /// The group's training interactions with it.
    pub count: usize,
    pub group_share: f64,
    pub catalogue_share: f64,
    pub lift: f64,
}

/// One group.
#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    pub group: usize,
    pub size: usize,
    /// Empty for a single-table run.
    pub centroid: Vec<f32>,
    /// (validation, test) of the group's users with the group's table, at the best epoch.
    pub own: (Metrics, Metrics),
    /// The same users under the global (stage-1) model (PerPEFT).
    pub global: Option<(Metrics, Metrics)>,
    pub items: Vec<Lift<u32>>,
    pub categories: Vec<Lift<String>>,
    /// `(item, rank under the group's table, rank under the global model)`, 1-based.
    pub promoted: Vec<(u32, usize, usize)>,
    pub demoted: Vec<(u32, usize, usize)>,
}

/// Every user projected to 2-D.
#[derive(Debug, Clone, PartialEq)]
pub struct Map {
    /// Fraction of the representation's variance along each axis.
    pub explained: Vec<f64>,
    /// Per user index.
    pub points: Vec<[f32; 2]>,
}

/// The groups' descriptions and the map.
#[derive(Debug, Clone, PartialEq)]
pub struct Insights {
    pub cards: Vec<Card>,
    /// PCA of `representation`.
    pub map: Map,
    /// What users are grouped by (PerPEFT: the global model's state; else the run's own
    /// state), row-major `[users, dim]`.
    pub representation: Vec<f32>,
    pub dim: usize,
}

/// What [`Insights::compute`] reads.
pub struct Inputs<'a> {
    pub dataset: &'a Dataset,
    pub split: &'a Split,
    /// The run's best epoch in burn (metrics per group are evaluated with it).
    pub model: &'a LoadedModel,
    /// One table per group, row-major.
    pub tables: &'a [Vec<f32>],
    pub dim: usize,
    pub assignment: &'a [usize],
    /// Each user's state under their group's table, row-major.
    pub states: &'a [f32],
    /// Each user's input history.
    pub inputs: &'a [Vec<u32>],
    /// PerPEFT: the grouping (global model in plain Rust) and the global model in burn.
    pub global: Option<(&'a Grouping, &'a LoadedModel)>,
}

impl Insights {
    /// Computes every group's card and the map (burn only to evaluate the run's and the global
    /// model's metrics per group).
    pub fn compute(x: &Inputs<'_>) -> Result<Self> {
        let k = x.tables.len();
        let members = {
            let mut m = vec![Vec::new(); k];
            for (u, &g) in x.assignment.iter().enumerate() {
                m[g].push(u);
            }
            m
        };
        // evaluated here, from the files served (not taken from the record)
        let per_group = |model: &LoadedModel, tables: &[burn::prelude::Tensor<2>]| {
            let (_, v) =
                evaluate_grouped(&model.sasrec, tables, x.assignment, x.split, Phase::Valid);
            let (_, t) =
                evaluate_grouped(&model.sasrec, tables, x.assignment, x.split, Phase::Test);
            v.into_iter().zip(t).collect::<Vec<_>>()
        };
        let own = per_group(x.model, &x.model.tables);
        let global_metrics = x
            .global
            .map(|(_, loaded)| per_group(loaded, &vec![loaded.tables[0].clone(); k]));
        // global-model states over the same inputs: the grouping representation
        let global_states: Option<Vec<f32>> = x
            .global
            .map(|(g, _)| x.inputs.iter().flat_map(|h| g.state(h)).collect());
        let counts = Counts::new(x.dataset, x.split, &members);
        let cards = (0..k)
            .map(|g| Card {
                group: g,
                size: members[g].len(),
                centroid: x
                    .global
                    .map(|(gr, _)| gr.centroids[g * x.dim..(g + 1) * x.dim].to_vec())
                    .unwrap_or_default(),
                own: own[g],
                global: global_metrics.as_ref().map(|m| m[g]),
                items: counts.item_lifts(g),
                categories: counts.category_lifts(x.dataset, g),
                promoted: Vec::new(),
                demoted: Vec::new(),
            })
            .collect::<Vec<_>>();
        let cards = match (x.global, &global_states) {
            (Some((grouping, _)), Some(gs)) => cards
                .into_iter()
                .map(|mut c| {
                    let (p, d) = shifts(x, grouping, gs, &members[c.group], c.group);
                    (c.promoted, c.demoted) = (p, d);
                    c
                })
                .collect(),
            _ => cards,
        };
        let representation = global_states.unwrap_or_else(|| x.states.to_vec());
        Ok(Self {
            cards,
            map: project(&representation, x.dim)?,
            representation,
            dim: x.dim,
        })
    }

    /// t-SNE (linfa-tsne, Barnes-Hut, perplexity 30, 1,000 iterations, seeded) of the
    /// representation to 2-D; `explained` is empty (t-SNE keeps neighbourhoods, not variance).
    pub fn tsne(&self) -> Result<Map> {
        use linfa::traits::Transformer;
        use linfa_tsne::TSneParams;
        let n = self.representation.len() / self.dim;
        let data = Array2::from_shape_vec(
            (n, self.dim),
            self.representation.iter().map(|&v| v as f64).collect(),
        )
        .map_err(|e| Error::Compute(format!("user map: {e}")))?;
        let perplexity = 30f64.min((n as f64 - 1.0) / 3.0 - 1.0).max(1.0);
        let xy = TSneParams::embedding_size(2)
            .perplexity(perplexity)
            .approx_threshold(0.5)
            .max_iter(1000)
            .transform(data)
            .map_err(|e| Error::Compute(format!("user map (t-SNE): {e}")))?;
        Ok(Map {
            explained: Vec::new(),
            points: xy
                .rows()
                .into_iter()
                .map(|r| [r[0] as f32, r[1] as f32])
                .collect(),
        })
    }
}

/// Training interactions per item and per category, overall and per group.
struct Counts {
    all: Vec<usize>,
    per_group: Vec<Vec<usize>>,
}

impl Counts {
    fn new(dataset: &Dataset, split: &Split, members: &[Vec<usize>]) -> Self {
        let n = dataset.n_items() + 1;
        let mut all = vec![0; n];
        let per_group = members
            .iter()
            .map(|users| {
                let mut c = vec![0; n];
                for &u in users {
                    for &i in &split.train[u] {
                        c[i as usize] += 1;
                        all[i as usize] += 1;
                    }
                }
                c
            })
            .collect();
        Self { all, per_group }
    }

    fn item_lifts(&self, g: usize) -> Vec<Lift<u32>> {
        let rows = (1..self.all.len()).map(|i| (i as u32, self.per_group[g][i], self.all[i]));
        top_lifts(rows)
    }

    fn category_lifts(&self, dataset: &Dataset, g: usize) -> Vec<Lift<String>> {
        let mut by: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
        for i in 1..self.all.len() {
            for c in &dataset.items[i - 1].categories {
                let e = by.entry(c.as_str()).or_default();
                e.0 += self.per_group[g][i];
                e.1 += self.all[i];
            }
        }
        top_lifts(by.into_iter().map(|(c, (n, all))| (c.to_string(), n, all)))
    }
}

/// The highest lifts among `(key, count in the group, count overall)` with at least
/// [`MIN_COUNT`] in the group; shares are over the sums of the counts given.
fn top_lifts<K: Clone>(rows: impl Iterator<Item = (K, usize, usize)>) -> Vec<Lift<K>> {
    let rows: Vec<(K, usize, usize)> = rows.collect();
    let group_total = rows.iter().map(|r| r.1).sum::<usize>().max(1) as f64;
    let total = rows.iter().map(|r| r.2).sum::<usize>().max(1) as f64;
    let mut lifts: Vec<Lift<K>> = rows
        .into_iter()
        .filter(|r| r.1 >= MIN_COUNT)
        .map(|(key, count, all)| {
            let group_share = count as f64 / group_total;
            let catalogue_share = all as f64 / total;
            Lift {
                key,
                count,
                group_share,
                catalogue_share,
                lift: group_share / catalogue_share,
            }
        })
        .collect();
    lifts.sort_by(|a, b| b.lift.total_cmp(&a.lift).then(b.count.cmp(&a.count)));
    lifts.truncate(TOP_LIFT);
    lifts
}

/// 1-based rank of every item (index = item id; the padding row is last) by `scores`.
fn ranks(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (1..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut rank = vec![usize::MAX; scores.len()];
    for (r, i) in order.into_iter().enumerate() {
        rank[i] = r + 1;
    }
    rank
}

fn mean_state(states: &[f32], dim: usize, users: &[usize]) -> Vec<f32> {
    let mut m = vec![0.0f32; dim];
    for &u in users {
        for (a, b) in m.iter_mut().zip(&states[u * dim..(u + 1) * dim]) {
            *a += b;
        }
    }
    let n = users.len().max(1) as f32;
    m.iter_mut().for_each(|v| *v /= n);
    m
}

/// The items group `g`'s table ranks highest above (promoted) and lowest below (demoted) the
/// global model, for the group's mean user (scores are linear in the state, so the mean user's
/// scores are the group's mean scores).
#[allow(clippy::type_complexity)]
fn shifts(
    x: &Inputs<'_>,
    grouping: &Grouping,
    global_states: &[f32],
    users: &[usize],
    g: usize,
) -> (Vec<(u32, usize, usize)>, Vec<(u32, usize, usize)>) {
    let own = ItemTable::new(x.dim, &x.tables[g])
        .expect("whole rows")
        .scores(&mean_state(x.states, x.dim, users));
    let global = ItemTable::new(x.dim, &grouping.table)
        .expect("whole rows")
        .scores(&mean_state(global_states, x.dim, users));
    let (r_own, r_global) = (ranks(&own), ranks(&global));
    let mut promoted: Vec<(u32, usize, usize)> = (1..own.len())
        .filter(|&i| r_own[i] <= SHIFT_POOL && r_global[i] > r_own[i])
        .map(|i| (i as u32, r_own[i], r_global[i]))
        .collect();
    promoted.sort_by_key(|&(i, o, gl)| (std::cmp::Reverse(gl - o), i));
    promoted.truncate(TOP_SHIFT);
    let mut demoted: Vec<(u32, usize, usize)> = (1..own.len())
        .filter(|&i| r_global[i] <= SHIFT_POOL && r_own[i] > r_global[i])
        .map(|i| (i as u32, r_own[i], r_global[i]))
        .collect();
    demoted.sort_by_key(|&(i, o, gl)| (std::cmp::Reverse(o - gl), i));
    demoted.truncate(TOP_SHIFT);
    (promoted, demoted)
}

/// PCA of the `dim`-wide rows of `points` to 2-D: the projections on the two leading
/// eigenvectors of the covariance matrix (linfa-linalg's symmetric eigendecomposition), each
/// axis's sign fixed so its largest loading is positive, with the share of the total variance
/// each axis keeps.
fn project(points: &[f32], dim: usize) -> Result<Map> {
    use linfa_linalg::eigh::{EigSort, Eigh};
    let n = points.len() / dim;
    let data = Array2::from_shape_vec((n, dim), points.iter().map(|&v| v as f64).collect())
        .map_err(|e| Error::Compute(format!("user map: {e}")))?;
    let mean = data
        .mean_axis(ndarray::Axis(0))
        .ok_or_else(|| Error::Compute("user map: no users".into()))?;
    let centred = &data - &mean;
    let cov = centred.t().dot(&centred) / n as f64;
    let (values, vectors) = cov
        .eigh()
        .map_err(|e| Error::Compute(format!("user map (PCA): {e}")))?
        .sort_eig_desc();
    let total = values.iter().map(|v| v.max(0.0)).sum::<f64>().max(1e-12);
    let axes: Vec<ndarray::Array1<f64>> = (0..2.min(dim))
        .map(|a| {
            let v = vectors.column(a).to_owned();
            let largest = v
                .iter()
                .copied()
                .max_by(|x, y| x.abs().total_cmp(&y.abs()))
                .unwrap_or(1.0);
            if largest < 0.0 { -v } else { v }
        })
        .collect();
    let points = centred
        .rows()
        .into_iter()
        .map(|r| {
            let c = |a: usize| axes.get(a).map_or(0.0, |v| r.dot(v)) as f32;
            [c(0), c(1)]
        })
        .collect();
    let explained = (0..axes.len())
        .map(|a| values[a].max(0.0) / total)
        .collect();
    Ok(Map { explained, points })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifts_rank_over_represented_keys_and_skip_rare_ones() {
        // (key, in group, overall): "a" is 40% of the group and 10% overall
        let rows = [("a", 8, 10), ("b", 8, 60), ("c", 4, 30), ("d", 0, 0)];
        let l = top_lifts(rows.into_iter());
        assert_eq!(l.len(), 2, "c has fewer than {MIN_COUNT}, d none");
        assert_eq!(l[0].key, "a");
        assert!((l[0].group_share - 0.4).abs() < 1e-12);
        assert!((l[0].catalogue_share - 0.1).abs() < 1e-12);
        assert!((l[0].lift - 4.0).abs() < 1e-12);
        assert!((l[1].lift - 0.4 / 0.6).abs() < 1e-12);
    }

    #[test]
    fn ranks_are_one_based_and_ties_go_to_the_lower_id() {
        let r = ranks(&[9.0, 0.5, 2.0, 0.5]);
        assert_eq!(&r[1..], &[2, 1, 3]);
    }

    #[test]
    fn the_map_keeps_the_main_direction_of_spread() {
        // points along (1, 1, 0) with a little noise in z: the first axis explains nearly all
        let pts: Vec<f32> = (0..50)
            .flat_map(|i| {
                let t = i as f32 / 10.0;
                [t, t, if i % 2 == 0 { 0.01 } else { -0.01 }]
            })
            .collect();
        let m = project(&pts, 3).unwrap();
        assert_eq!(m.points.len(), 50);
        assert!(m.explained[0] > 0.99, "{:?}", m.explained);
        // the first coordinate orders the points as t does (up to sign)
        let xs: Vec<f32> = m.points.iter().map(|p| p[0]).collect();
        let increasing = xs.windows(2).all(|w| w[1] > w[0]);
        let decreasing = xs.windows(2).all(|w| w[1] < w[0]);
        assert!(increasing || decreasing);
    }
}
