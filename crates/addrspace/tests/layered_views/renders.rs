//! 2. Every CPU view equals a fresh render and is layered over the current system view.

use super::*;

// 2. Every CPU view equals a fresh render, and is layered over the current system view.

/// The churn of test 1 without readers: after every step, the CPU it touched and two random
/// CPUs (all 32 every 500 steps) equal a fresh flat render and are layered over system's
/// current view; system's view equals its render; and the live flat views are exactly the
/// distinct views of system and the CPUs plus the empty view.
#[test]
pub(crate) fn churn_keeps_every_cpu_view_equal_to_a_fresh_render() {
    let t0 = Instant::now();
    let mut ch = Churn::new(CPUS, 0xc0ff_ee11);
    let steps = 5_000;
    let (mut checked, mut layered, mut rebased_only) = (0u64, 0u64, 0u64);
    for i in 0..steps {
        let before = ch.mem.stats();
        let step = ch.step(&mut |_, _| {});
        let after = ch.mem.stats();
        let at = format!("step {i} ({step:?})");
        ch.check_system(&at);
        let mut sample = vec![ch.rng.index(CPUS), ch.rng.index(CPUS)];
        if let Step::Cpu(s) | Step::Private(s) = step {
            sample.push(s);
        }
        if i % 500 == 499 {
            sample = (0..CPUS).collect();
        }
        for s in sample {
            if ch.cluster.cpu(s).is_some() {
                layered += u64::from(ch.check_cpu(s, &at));
                checked += 1;
            }
        }
        if matches!(step, Step::System) && after.layers > before.layers && after.renders == before.renders {
            rebased_only += 1;
        }
        // Renders above were dropped: only published views are alive.
        assert_eq!(
            ch.mem.stats().flatviews,
            ch.views_needed(),
            "{at}: live flat views beyond the published ones"
        );
    }
    let s = ch.mem.stats();
    eprintln!(
        "fresh-render checks: {steps} steps, {checked} CPU checks ({layered} layered) in {:?}; \
         {rebased_only} system steps with layers and no render; renders {} patches {} layers {}",
        t0.elapsed(),
        s.renders,
        s.patches,
        s.layers
    );
    assert!(layered > checked * 3 / 4, "most CPU views are layered");
}
