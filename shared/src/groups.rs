//! Assigning a user to a group: the nearest centroid to the user's state under the run's global
//! model (squared Euclidean distance, ties to the lower group). The server assigns a history it
//! has not seen with it, and the browser can do the same without a round trip.

/// The index of the centroid (row of `centroids`, row-major `[k, dim]`) nearest to `state`.
///
/// Panics when `state` is not `dim` wide or there is no centroid.
pub fn nearest(centroids: &[f32], dim: usize, state: &[f32]) -> usize {
    assert_eq!(state.len(), dim, "state width");
    centroids
        .chunks_exact(dim)
        .map(|c| {
            c.iter()
                .zip(state)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f32>()
        })
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
        .map(|(g, _)| g)
        .expect("at least one centroid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_centroid_wins_and_ties_go_to_the_lower_group() {
        let centroids = [0.0, 0.0, 10.0, 0.0, 0.0, 10.0];
        assert_eq!(nearest(&centroids, 2, &[9.0, 1.0]), 1);
        assert_eq!(nearest(&centroids, 2, &[1.0, 8.0]), 2);
        assert_eq!(
            nearest(&centroids, 2, &[6.0, 6.0]),
            1,
            "1 and 2 tie; 0 is farther"
        );
        assert_eq!(nearest(&centroids, 2, &[-1.0, -1.0]), 0);
    }
}
