//! Differencing: two answers whose groups differ by fewer than `k` persons tell those
//! persons' values by subtraction (`count(*) WHERE school = 'X'` and the same with one
//! child's birth year and postcode excluded). Each released group's set of persons is
//! kept per user as a fixed-size sketch from which the difference of two sets can be
//! recovered when it is small (an invertible Bloom lookup table); a group whose set
//! differs from one released before by 1 to `k - 1` persons is suppressed.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};

/// Cells per hash function; three functions. A difference of up to about 25 persons
/// decodes, well past the thresholds in use.
const CELLS: usize = 12;
const HASHES: usize = 3;

/// Sketches kept per user; the oldest go first.
const KEPT_PER_USER: usize = 20_000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Cell {
    count: i32,
    keys: u64,
    checks: u64,
}

/// The persons of one released group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonSketch {
    persons: u64,
    cells: [Cell; CELLS * HASHES],
}

/// Hashes pseudonyms for sketches, with a key of the process's own: the sketches never
/// leave it.
#[derive(Debug, Clone, Default)]
pub struct PersonHasher(foldhash::quality::RandomState);

impl PersonHasher {
    pub fn person(&self, pseudonym: &str) -> u64 {
        self.0.hash_one(pseudonym)
    }
}

fn mix(value: u64, seed: u64) -> u64 {
    let mut hasher = foldhash::quality::FixedState::with_seed(seed).build_hasher();
    hasher.write_u64(value);
    hasher.finish()
}

fn check(person: u64) -> u64 {
    mix(person, 0x9e37_79b9_7f4a_7c15)
}

fn cell_index(person: u64, function: usize) -> usize {
    function * CELLS + (mix(person, function as u64 + 1) % CELLS as u64) as usize
}

impl PersonSketch {
    /// The sketch of a set of distinct persons.
    pub fn of(persons: impl IntoIterator<Item = u64>) -> Self {
        let mut sketch = Self {
            persons: 0,
            cells: [Cell::default(); CELLS * HASHES],
        };
        for person in persons {
            sketch.persons += 1;
            for function in 0..HASHES {
                let cell = &mut sketch.cells[cell_index(person, function)];
                cell.count += 1;
                cell.keys ^= person;
                cell.checks ^= check(person);
            }
        }
        sketch
    }

    /// How many persons are in one set and not the other, when that can be told (a
    /// small difference); `None` for a large one.
    pub fn difference(&self, other: &Self) -> Option<u64> {
        if self.persons.abs_diff(other.persons) > (CELLS * HASHES) as u64 {
            return None;
        }
        let mut cells = self.cells;
        for (cell, theirs) in cells.iter_mut().zip(&other.cells) {
            cell.count -= theirs.count;
            cell.keys ^= theirs.keys;
            cell.checks ^= theirs.checks;
        }
        let mut found = 0;
        loop {
            let pure = cells
                .iter()
                .position(|c| c.count.abs() == 1 && c.checks == check(c.keys));
            let Some(index) = pure else { break };
            let Cell { count, keys, .. } = cells[index];
            for function in 0..HASHES {
                let cell = &mut cells[cell_index(keys, function)];
                cell.count -= count;
                cell.keys ^= keys;
                cell.checks ^= check(keys);
            }
            found += 1;
        }
        cells.iter().all(|c| *c == Cell::default()).then_some(found)
    }

    /// Whether the two sets differ by at least one and fewer than `min_persons`.
    pub fn differences(&self, other: &Self, min_persons: u64) -> bool {
        self.persons.abs_diff(other.persons) < min_persons
            && self
                .difference(other)
                .is_some_and(|d| d > 0 && d < min_persons)
    }
}

/// The sketches of the groups released to one user.
#[derive(Debug, Default)]
pub struct History {
    released: VecDeque<PersonSketch>,
}

impl History {
    /// Whether `sketch` differs by 1 to `min_persons - 1` persons from a group
    /// released before.
    pub fn differences(&self, sketch: &PersonSketch, min_persons: u64) -> bool {
        self.released
            .iter()
            .any(|released| sketch.differences(released, min_persons))
    }

    pub fn remember(&mut self, sketch: PersonSketch) {
        if self.released.len() == KEPT_PER_USER {
            self.released.pop_front();
        }
        self.released.push_back(sketch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_differences_are_counted_exactly_and_large_ones_not_at_all() {
        let hasher = PersonHasher::default();
        let people: Vec<u64> = (0..500).map(|n| hasher.person(&format!("p{n}"))).collect();
        let all = PersonSketch::of(people.iter().copied());
        for removed in 0..20 {
            let fewer = PersonSketch::of(people[removed..].iter().copied());
            assert_eq!(all.difference(&fewer), Some(removed as u64));
            assert_eq!(all.differences(&fewer, 10), (1..10).contains(&removed));
        }
        // One out, another in: two persons apart, same size.
        let swapped = PersonSketch::of(people[1..].iter().copied().chain([hasher.person("other")]));
        assert_eq!(all.difference(&swapped), Some(2));
        let half = PersonSketch::of(people[250..].iter().copied());
        assert_eq!(all.difference(&half), None);
        assert!(!all.differences(&half, 10));
    }
}
