//! A generated job stream: what a mix of batch users submits over a few days.

use crate::domain::job::MAX_COMPUTE_HOURS;
use crate::domain::time::Hour;
use serde_json::json;

/// Deterministic draws for (seed, index, what).
fn draw(seed: u64, i: u64, what: u64) -> f64 {
    let mut x =
        seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ what.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// `jobs` jobs arriving over `hours` hours from `start`, as (arrival hour, JSON line).
///
/// Mix: priority 0 for 10 %, 1-3 for 30 %, 4-9 for the rest; 1-16 units (mostly small);
/// 1-12 hours of wall time; deadlines from a little to a day and a half of slack; one job
/// in five pinned to one or two regions.
pub fn generate(
    seed: u64,
    jobs: usize,
    hours: u32,
    start: Hour,
    regions: &[String],
) -> Vec<(Hour, String)> {
    let mut out: Vec<(Hour, String)> = (0..jobs as u64)
        .map(|i| {
            let arrival = start.plus((draw(seed, i, 1) * f64::from(hours.max(1))) as i64);
            let p = draw(seed, i, 2);
            let priority = if p < 0.1 {
                0
            } else if p < 0.4 {
                1 + (draw(seed, i, 3) * 3.0) as u8
            } else {
                4 + (draw(seed, i, 3) * 6.0) as u8
            };
            let units = [1u32, 1, 2, 2, 4, 4, 8, 16][(draw(seed, i, 4) * 8.0) as usize];
            let wall_hours = 1.0 + (draw(seed, i, 5) * 11.0 * 4.0).round() / 4.0;
            let compute_hours = (f64::from(units) * wall_hours).min(MAX_COMPUTE_HOURS);
            let slack_h = 2.0 + draw(seed, i, 6).powf(1.5) * 34.0;
            let deadline = arrival.start()
                + chrono::Duration::minutes(((wall_hours + slack_h) * 60.0) as i64)
                + chrono::Duration::minutes(30);
            let mut line = json!({
                "id": format!("job-{seed}-{i:05}"),
                "priority": priority,
                "compute_hours": compute_hours,
                "units": units,
                "deadline": deadline.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            });
            if !regions.is_empty() && draw(seed, i, 7) < 0.2 {
                let a =
                    &regions[(draw(seed, i, 8) * regions.len() as f64) as usize % regions.len()];
                let b =
                    &regions[(draw(seed, i, 9) * regions.len() as f64) as usize % regions.len()];
                line["regions"] = json!(if a == b { vec![a] } else { vec![a, b] });
            }
            (arrival, line.to_string())
        })
        .collect();
    out.sort_by_key(|(h, _)| *h);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::job::Job;

    #[test]
    fn generated_jobs_are_valid_and_deterministic() {
        let regions = vec!["us-east".to_string(), "eu-west".to_string()];
        let a = generate(3, 500, 48, Hour(1000), &regions);
        assert_eq!(a, generate(3, 500, 48, Hour(1000), &regions));
        assert_ne!(a, generate(4, 500, 48, Hour(1000), &regions));
        let mut p0 = 0;
        for (arrival, line) in &a {
            let job = Job::parse_line(line).unwrap();
            assert!(arrival.0 >= 1000 && arrival.0 < 1048);
            assert!(Hour::containing(job.deadline) > *arrival);
            p0 += usize::from(job.priority.get() == 0);
        }
        assert!((20..=80).contains(&p0), "{p0}");
        assert!(a.windows(2).all(|w| w[0].0 <= w[1].0));
    }
}
