//! Small-cell suppression of a table of counts (exports, and the named views as
//! released to researchers). An attacker is assumed to know every column's total over
//! the rows and, with two or more count columns, every row's total over them.
//! - Primary: every count below the threshold is suppressed (zeros too: an empty
//!   cell can disclose as much as a small one).
//! - Secondary: a suppressed cell must not follow from those totals. Seen as a
//!   bipartite graph (rows and columns as nodes, suppressed cells as edges), a cell
//!   follows from the totals exactly when its edge lies on no cycle. So every row and
//!   column with a suppressed cell gets at least two, and every suppressed cell that
//!   still lies on no cycle gets one, by suppressing the cell that closes a
//!   rectangle with it. Among candidates, the smallest count goes first (ties: first
//!   row, then first column), which also makes the result deterministic.

use std::collections::BTreeSet;

/// Which cells (row, count column) to suppress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    pub suppressed: BTreeSet<(usize, usize)>,
    pub primary: usize,
}

/// Small-cell suppression of a grid of counts (rows × count columns); nulls are
/// published as they are (nothing to hide).
pub fn suppress(grid: &[Vec<Option<i64>>], threshold: i64) -> Suppression {
    let rows = grid.len();
    let columns = grid.first().map_or(0, Vec::len);
    let mut suppressed: BTreeSet<(usize, usize)> = (0..rows)
        .flat_map(|r| (0..columns).map(move |c| (r, c)))
        .filter(|&(r, c)| grid[r][c].is_some_and(|v| v < threshold))
        .collect();
    let primary = suppressed.len();
    // Which totals are known: over rows per column (with two or more rows), over
    // columns per row (with two or more count columns).
    let column_totals = rows >= 2;
    let row_totals = columns >= 2;
    let value = |cell: (usize, usize)| grid[cell.0][cell.1].unwrap_or(i64::MAX);
    let cheapest = |candidates: &mut dyn Iterator<Item = (usize, usize)>,
                    suppressed: &BTreeSet<(usize, usize)>| {
        candidates
            .filter(|cell| !suppressed.contains(cell) && grid[cell.0][cell.1].is_some())
            .min_by_key(|&cell| (value(cell), cell))
    };
    loop {
        let mut added = None;
        // A row or column with one suppressed cell gives it away through its total.
        if column_totals {
            for c in 0..columns {
                if suppressed.iter().filter(|s| s.1 == c).count() == 1 {
                    added = cheapest(&mut (0..rows).map(|r| (r, c)), &suppressed);
                    if added.is_some() {
                        break;
                    }
                }
            }
        }
        if added.is_none() && row_totals {
            for r in 0..rows {
                if suppressed.iter().filter(|s| s.0 == r).count() == 1 {
                    added = cheapest(&mut (0..columns).map(|c| (r, c)), &suppressed);
                    if added.is_some() {
                        break;
                    }
                }
            }
        }
        // With both totals known, a cell on no cycle follows from them: close a
        // rectangle through it.
        if added.is_none()
            && column_totals
            && row_totals
            && let Some(&(r, c)) = suppressed
                .iter()
                .find(|&&cell| !on_cycle(&suppressed, cell))
        {
            let others_in_column: Vec<usize> = suppressed
                .iter()
                .filter(|s| s.1 == c && s.0 != r)
                .map(|s| s.0)
                .collect();
            let others_in_row: Vec<usize> = suppressed
                .iter()
                .filter(|s| s.0 == r && s.1 != c)
                .map(|s| s.1)
                .collect();
            added = cheapest(
                &mut others_in_column
                    .iter()
                    .flat_map(|&r2| others_in_row.iter().map(move |&c2| (r2, c2))),
                &suppressed,
            )
            .or_else(|| {
                // No rectangle available: any other cell of the row or column.
                cheapest(
                    &mut (0..rows)
                        .map(|r2| (r2, c))
                        .chain((0..columns).map(|c2| (r, c2))),
                    &suppressed,
                )
            });
        }
        match added {
            Some(cell) => {
                suppressed.insert(cell);
            }
            None => {
                return Suppression {
                    suppressed,
                    primary,
                };
            }
        }
    }
}

/// Whether suppressed cell (r, c) lies on a cycle of the row–column graph: whether
/// row r and column c stay connected without it.
fn on_cycle(suppressed: &BTreeSet<(usize, usize)>, cell: (usize, usize)) -> bool {
    // Nodes: rows as (0, r), columns as (1, c).
    let mut seen: BTreeSet<(u8, usize)> = BTreeSet::new();
    let mut stack = vec![(0u8, cell.0)];
    while let Some(node) = stack.pop() {
        if !seen.insert(node) {
            continue;
        }
        if node == (1, cell.1) {
            return true;
        }
        for &(r, c) in suppressed.iter().filter(|&&s| s != cell) {
            match node {
                (0, row) if r == row => stack.push((1, c)),
                (1, column) if c == column => stack.push((0, r)),
                _ => {}
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(rows: &[&[i64]]) -> Vec<Vec<Option<i64>>> {
        rows.iter()
            .map(|r| r.iter().map(|v| Some(*v)).collect())
            .collect()
    }

    /// The attacker, by linear algebra rather than the cycles the suppression reasons
    /// with: the suppressed cells are unknowns, each known total an equation over
    /// them (its value less the published cells), and an unknown is solved when its
    /// unit vector lies in the span of the equations (adding it leaves the rank).
    fn solvable_cells(grid: &[Vec<Option<i64>>], s: &Suppression) -> Vec<(usize, usize)> {
        let rows = grid.len();
        let columns = grid[0].len();
        let unknowns: Vec<(usize, usize)> = s.suppressed.iter().copied().collect();
        let mut equations: Vec<Vec<f64>> = Vec::new();
        let equation = |on: &dyn Fn(&(usize, usize)) -> bool| -> Vec<f64> {
            unknowns
                .iter()
                .map(|u| if on(u) { 1.0 } else { 0.0 })
                .collect()
        };
        if rows >= 2 {
            equations.extend((0..columns).map(|c| equation(&|u| u.1 == c)));
        }
        if columns >= 2 {
            equations.extend((0..rows).map(|r| equation(&|u| u.0 == r)));
        }
        let base = rank(equations.clone());
        unknowns
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                let mut with = equations.clone();
                with.push(
                    (0..unknowns.len())
                        .map(|j| if j == *i { 1.0 } else { 0.0 })
                        .collect(),
                );
                rank(with) == base
            })
            .map(|(_, cell)| *cell)
            .collect()
    }

    /// The rank of a matrix, by Gaussian elimination.
    fn rank(mut matrix: Vec<Vec<f64>>) -> usize {
        let width = matrix.first().map_or(0, Vec::len);
        let mut rank = 0;
        for column in 0..width {
            let Some(pivot) = (rank..matrix.len()).find(|&r| matrix[r][column].abs() > 1e-9) else {
                continue;
            };
            matrix.swap(rank, pivot);
            let pivot_row = matrix[rank].clone();
            for (r, row) in matrix.iter_mut().enumerate() {
                if r != rank && row[column].abs() > 1e-9 {
                    let factor = row[column] / pivot_row[column];
                    for (value, pivot_value) in row.iter_mut().zip(&pivot_row) {
                        *value -= factor * pivot_value;
                    }
                }
            }
            rank += 1;
        }
        rank
    }

    /// No small count published, and none of the suppressed ones solvable.
    fn safe(grid: &[Vec<Option<i64>>], s: &Suppression, threshold: i64) -> bool {
        let published_small = grid.iter().enumerate().any(|(r, row)| {
            row.iter()
                .enumerate()
                .any(|(c, v)| !s.suppressed.contains(&(r, c)) && v.is_some_and(|v| v < threshold))
        });
        !published_small && solvable_cells(grid, s).is_empty()
    }

    #[test]
    fn the_attacker_solves_what_follows_from_the_totals() {
        // One suppressed cell in a column: its total gives it away.
        let g = grid(&[&[3], &[40]]);
        let lonely = Suppression {
            suppressed: BTreeSet::from([(0, 0)]),
            primary: 1,
        };
        assert_eq!(solvable_cells(&g, &lonely), vec![(0, 0)]);
        // A rectangle of four in a 2 x 2 table: no cell follows.
        let g = grid(&[&[3, 20], &[25, 4]]);
        let rectangle = Suppression {
            suppressed: BTreeSet::from([(0, 0), (0, 1), (1, 0), (1, 1)]),
            primary: 2,
        };
        assert!(solvable_cells(&g, &rectangle).is_empty());
        // An L of three: the corner's row and column both hold another, yet the two
        // ends are alone in theirs.
        let l_shape = Suppression {
            suppressed: BTreeSet::from([(0, 0), (0, 1), (1, 0)]),
            primary: 1,
        };
        assert_eq!(solvable_cells(&g, &l_shape).len(), 3);
    }

    #[test]
    fn a_lonely_small_count_takes_the_smallest_neighbour_with_it() {
        let g = grid(&[&[3], &[40], &[25], &[70]]);
        let s = suppress(&g, 10);
        assert_eq!(s.primary, 1);
        assert_eq!(s.suppressed, BTreeSet::from([(0, 0), (2, 0)]));
        assert!(safe(&g, &s, 10));
    }

    #[test]
    fn two_dimensional_tables_get_rectangles() {
        let g = grid(&[&[5, 30, 12], &[20, 40, 35], &[15, 8, 60], &[50, 45, 33]]);
        let s = suppress(&g, 10);
        assert_eq!(s.primary, 2);
        assert!(safe(&g, &s, 10), "{:?}", s.suppressed);
        // Nothing big is hidden when something smaller would do.
        assert!(!s.suppressed.contains(&(3, 0)) && !s.suppressed.contains(&(2, 2)));
    }

    #[test]
    fn no_small_count_no_suppression() {
        let g = grid(&[&[10, 11], &[12, 13]]);
        assert!(suppress(&g, 10).suppressed.is_empty());
    }

    #[test]
    fn pseudo_random_tables_are_always_safe() {
        let mut seed: u64 = 7;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as i64
        };
        for _ in 0..300 {
            let rows = 1 + (next() % 7) as usize;
            let columns = 1 + (next() % 5) as usize;
            let g: Vec<Vec<Option<i64>>> = (0..rows)
                .map(|_| (0..columns).map(|_| Some(next() % 40)).collect())
                .collect();
            let s = suppress(&g, 10);
            assert!(safe(&g, &s, 10), "{g:?} → {:?}", s.suppressed);
        }
    }
}
