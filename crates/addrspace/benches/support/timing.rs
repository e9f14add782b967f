//! Timing helpers shared by the bench binaries (each includes this file with `#[path]`):
//! medians of single, individually timed calls.

use std::time::Instant;

/// Median of `v` (sorted in place).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Median nanoseconds per call of `f` over `n` calls, timed one call at a time.
pub fn median_ns(n: usize, mut f: impl FnMut(usize)) -> f64 {
    let mut t: Vec<f64> = (0..n)
        .map(|i| {
            let s = Instant::now();
            f(i);
            s.elapsed().as_nanos() as f64
        })
        .collect();
    median(&mut t)
}
