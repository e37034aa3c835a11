//! Differencing: two answers whose groups differ by fewer than `k` persons tell those
//! persons' values by subtraction (`count(*) WHERE school = 'X'` and the same with one
//! child's birth year and postcode excluded). Each released group's set of persons is
//! kept per user as a fixed-size sketch from which the difference of two sets can be
//! recovered when it is small (an invertible Bloom lookup table); a group whose set
//! differs from one released before by 1 to `k - 1` persons is suppressed. The
//! sketches are kept in a file per user, so a restart forgets nothing.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};

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

/// A sketch's size in its file: the persons, then each cell's count, keys and checks.
const RECORD_BYTES: usize = 8 + CELLS * HASHES * 20;

/// SplitMix64's finaliser: fixed for good, as the sketches in the files depend on it.
fn mix(value: u64, seed: u64) -> u64 {
    let mut z = value ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
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

    fn to_bytes(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.persons.to_le_bytes());
        for cell in &self.cells {
            out.extend_from_slice(&cell.count.to_le_bytes());
            out.extend_from_slice(&cell.keys.to_le_bytes());
            out.extend_from_slice(&cell.checks.to_le_bytes());
        }
    }

    fn from_bytes(record: &[u8]) -> Self {
        let u64_at = |at: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&record[at..at + 8]);
            u64::from_le_bytes(bytes)
        };
        let mut cells = [Cell::default(); CELLS * HASHES];
        for (n, cell) in cells.iter_mut().enumerate() {
            let at = 8 + n * 20;
            let mut count = [0u8; 4];
            count.copy_from_slice(&record[at..at + 4]);
            *cell = Cell {
                count: i32::from_le_bytes(count),
                keys: u64_at(at + 4),
                checks: u64_at(at + 12),
            };
        }
        Self {
            persons: u64_at(0),
            cells,
        }
    }

    /// Whether the two sets differ by at least one and fewer than `min_persons`.
    pub fn differences(&self, other: &Self, min_persons: u64) -> bool {
        self.persons.abs_diff(other.persons) < min_persons
            && self
                .difference(other)
                .is_some_and(|d| d > 0 && d < min_persons)
    }
}

/// The sketches of the groups released to one user, and the file they are kept in.
#[derive(Debug)]
pub struct History {
    released: VecDeque<PersonSketch>,
    file: PathBuf,
}

impl History {
    /// The history kept in `file` (none yet when it does not exist). A record cut
    /// short by a crash is left out; a file of many more than are kept is rewritten.
    pub fn open(file: PathBuf) -> std::io::Result<Self> {
        let bytes = match std::fs::read(&file) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let records = bytes.chunks_exact(RECORD_BYTES);
        let skip = records.len().saturating_sub(KEPT_PER_USER);
        let released: VecDeque<PersonSketch> =
            records.skip(skip).map(PersonSketch::from_bytes).collect();
        let history = Self { released, file };
        if skip > KEPT_PER_USER || bytes.len() % RECORD_BYTES != 0 {
            history.rewrite()?;
        }
        Ok(history)
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    fn rewrite(&self) -> std::io::Result<()> {
        let mut bytes = Vec::with_capacity(self.released.len() * RECORD_BYTES);
        self.released.iter().for_each(|s| s.to_bytes(&mut bytes));
        let temporary = self.file.with_extension("rewrite");
        std::fs::write(&temporary, &bytes)?;
        std::fs::rename(&temporary, &self.file)
    }

    /// Whether `sketch` differs by 1 to `min_persons - 1` persons from a group
    /// released before.
    pub fn differences(&self, sketch: &PersonSketch, min_persons: u64) -> bool {
        self.released
            .iter()
            .any(|released| sketch.differences(released, min_persons))
    }

    /// Keeps `sketches`, in the file first: an answer whose groups cannot be kept is
    /// not given.
    pub fn remember(&mut self, sketches: Vec<PersonSketch>) -> std::io::Result<()> {
        if sketches.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity(sketches.len() * RECORD_BYTES);
        sketches.iter().for_each(|s| s.to_bytes(&mut bytes));
        if let Some(folder) = self.file.parent() {
            std::fs::create_dir_all(folder)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.file)?;
        file.write_all(&bytes)?;
        file.sync_data()?;
        for sketch in sketches {
            if self.released.len() == KEPT_PER_USER {
                self.released.pop_front();
            }
            self.released.push_back(sketch);
        }
        Ok(())
    }
}

/// The file of `user`'s history in `folder`: named by a hash, so any user name makes a
/// file name.
pub fn history_file(folder: &Path, user: &str) -> PathBuf {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(user.as_bytes());
    folder.join(format!("{}.sketches", hex::encode(&digest[..12])))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(name: &str) -> u64 {
        name.bytes().fold(7, |h, b| mix(h, u64::from(b)))
    }

    #[test]
    fn small_differences_are_counted_exactly_and_large_ones_not_at_all() {
        let people: Vec<u64> = (0..500).map(|n| person(&format!("p{n}"))).collect();
        let all = PersonSketch::of(people.iter().copied());
        for removed in 0..20 {
            let fewer = PersonSketch::of(people[removed..].iter().copied());
            assert_eq!(all.difference(&fewer), Some(removed as u64));
            assert_eq!(all.differences(&fewer, 10), (1..10).contains(&removed));
        }
        // One out, another in: two persons apart, same size.
        let swapped = PersonSketch::of(people[1..].iter().copied().chain([person("other")]));
        assert_eq!(all.difference(&swapped), Some(2));
        let half = PersonSketch::of(people[250..].iter().copied());
        assert_eq!(all.difference(&half), None);
        assert!(!all.differences(&half, 10));
    }

    #[test]
    fn the_history_outlives_the_process_and_a_torn_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = history_file(dir.path(), "rita");
        let people: Vec<u64> = (0..40).map(|n| person(&format!("p{n}"))).collect();
        let mut history = History::open(file.clone()).expect("a new history");
        history
            .remember(vec![PersonSketch::of(people.iter().copied())])
            .expect("kept");
        // A crash in the middle of the next record.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .and_then(|mut f| f.write_all(&[1, 2, 3]))
            .expect("torn");
        let again = History::open(file.clone()).expect("read again");
        let one_less = PersonSketch::of(people[1..].iter().copied());
        assert!(again.differences(&one_less, 10));
        assert_eq!(
            std::fs::metadata(&file).expect("file").len(),
            RECORD_BYTES as u64
        );
    }
}
