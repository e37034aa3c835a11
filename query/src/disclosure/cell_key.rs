//! The Cell Key Method (as CBS applied it to the 2021 census tables): each person has
//! a fixed record key, a number from 0 to 255 derived from their pseudonym with a
//! secret of the service ([`super::person_keys`]); a cell's key is the sum of its
//! persons' record keys modulo 256, and the noise added to its count is looked up by
//! that key. The same persons always give the same noise, however the question is
//! put, so asking again and averaging does not remove it; a cell one person larger
//! has an unrelated key.

/// Noise by cell key: -2, -1, 0, +1, +2 with chances 13, 38, 154, 38 and 13 in 256
/// (about 5%, 15%, 60%, 15%, 5%): unbiased, and at most 2 off.
const NOISE: [(u16, i64); 5] = [(13, -2), (51, -1), (205, 0), (243, 1), (256, 2)];

/// The noise of a cell whose persons' record keys add up to `record_keys`.
pub fn noise(record_keys: u64) -> i64 {
    let cell_key = (record_keys % 256) as u16;
    NOISE
        .iter()
        .find(|(below, _)| cell_key < *below)
        .map_or(0, |(_, noise)| *noise)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_noise_is_unbiased_and_small() {
        let noises: Vec<i64> = (0..256).map(noise).collect();
        assert_eq!(noises.iter().sum::<i64>(), 0);
        assert!(noises.iter().all(|n| n.abs() <= 2));
        assert_eq!(noises.iter().filter(|n| **n == 0).count(), 154);
    }
}
