//! Concurrent planners on one embedded database: nothing lost, doubled or overbooked.

#![allow(clippy::unwrap_used)]

use grd::local::soak::{soak, SoakConfig};
use grd_tests::start;

#[test]
fn racing_planners_lose_double_and_overbook_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SoakConfig {
        jobs: 600,
        duplicate_rate: 0.1,
        malformed_rate: 0.05,
        planners: 4,
        hours: 12,
        nodes: 4,
        seed: 3,
        start: start(),
    };
    let r = soak(&dir.path().join("soak.db"), &cfg).unwrap();
    assert_eq!((r.lost, r.doubled, r.overbooked), (0, 0, 0), "{r:?}");
    assert_eq!(r.accepted, 600);
    assert_eq!(r.rejected_lines, r.malformed_sent);
    assert!(r.malformed_sent > 10 && r.duplicates_sent > 30);
    assert_eq!(r.by_status.values().sum::<usize>(), 600);
    assert!(r.commit_conflicts > 0, "the planners really raced");
    assert_eq!(r.plan_rounds as u32, 4 * r.hours_simulated);
}
