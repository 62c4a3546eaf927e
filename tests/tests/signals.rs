//! Out-of-order, duplicated, expired and impossible records never change a node's price.

#![allow(clippy::unwrap_used)]

use chrono::Duration;
use grd::adapters::sqlite::SqliteStore;
use grd::app::price_nodes::price_nodes;
use grd::domain::node::default_fleet;
use grd::domain::signal::{check_observation, Observation, Reading};
use grd::ports::{NodeStore, SignalStore, Stored};
use grd_tests::start;
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Record {
    weather: bool,
    /// Minutes before `now` of the source timestamp.
    age_min: i64,
    value: f64,
    glitch: u8,
}

fn record() -> impl Strategy<Value = Record> {
    (any::<bool>(), 0..400i64, -50.0..90.0f64, 0..6u8).prop_map(
        |(weather, age_min, value, glitch)| Record {
            weather,
            age_min,
            value,
            glitch,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn refused_records_never_move_the_price(records in prop::collection::vec(record(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let store = SqliteStore::in_memory().unwrap();
            let node = default_fleet(1).remove(0);
            store.put_node(&node).await.unwrap();
            let now = start() + Duration::hours(5);
            let mut last_price = None;
            let mut newest: [Option<chrono::DateTime<chrono::Utc>>; 2] = [None, None];
            for r in records {
                let value = match r.glitch {
                    0 => f64::NAN,
                    1 => -142.7 * if r.weather { 1.0 } else { 100.0 },
                    _ => r.value,
                };
                let reading = if r.weather {
                    Reading::Weather { temp_c: value, rh_pct: Some(50.0) }
                } else {
                    Reading::Price { usd_per_mwh: value }
                };
                let obs = Observation::new(&node.id, "test", now - Duration::minutes(r.age_min), reading);
                let outcome = match check_observation(&obs, now) {
                    Err(why) => Stored::Refused(why),
                    Ok(()) => store.put_observation(&obs).await.unwrap(),
                };
                let current = price_nodes(&store, std::slice::from_ref(&node), now, 1).await.unwrap();
                let price = current.first().map(|p| (p.usd_per_chr.to_bits(), p.stale, p.weather_ts, p.price_ts));
                let k = usize::from(!r.weather);
                match outcome {
                    Stored::Refused(_) => prop_assert_eq!(price, last_price, "a refused record moved the price"),
                    Stored::Accepted => {
                        prop_assert!(obs.reading.check().is_ok() && obs.valid_until > now);
                        prop_assert!(newest[k].is_none_or(|t| obs.source_ts > t), "an older record was accepted");
                        newest[k] = Some(obs.source_ts);
                    }
                }
                last_price = price;
            }
            Ok(())
        })?;
    }
}
