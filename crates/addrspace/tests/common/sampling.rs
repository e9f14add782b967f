//! What the property tests share around their generators: how many cases a run makes, and
//! the deterministic samples with which `generator_*` tests measure what a generator reaches
//! (so that a property cannot silently stop testing what it claims to).

use proptest::prelude::ProptestConfig;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestRng, TestRunner};

/// 256 cases by default (CI); `PROPTEST_CASES=N` runs more.
pub fn cases() -> u32 {
    env_count("PROPTEST_CASES", 256)
}

/// The property tests' configuration: [`cases`] cases, no failure files.
pub fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The number in environment variable `var`, else `default`.
pub fn env_count(var: &str, default: u32) -> u32 {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Draws `env_count(var, default)` values of `strategy` from a fixed seed and hands each to
/// `each`; returns how many.
pub fn sample<S: Strategy>(strategy: S, var: &str, default: u32, mut each: impl FnMut(S::Value)) -> u32 {
    let n = env_count(var, default);
    let config = Config::default();
    let mut runner = TestRunner::new_with_rng(config.clone(), TestRng::deterministic_rng(config.rng_algorithm));
    for _ in 0..n {
        each(strategy.new_tree(&mut runner).expect("a case").current());
    }
    n
}

/// `k` out of `n` as a percentage.
pub fn pct(k: u32, n: u32) -> f64 {
    100.0 * f64::from(k) / f64::from(n)
}
