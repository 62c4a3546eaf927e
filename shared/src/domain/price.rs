//! A node's price per compute-hour and available capacity, hour by hour.

use super::node::Node;
use super::pricing;
use super::signal::{Observation, Reading};
use super::time::Hour;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where an hour's inputs came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Current observations (the hour that is now).
    Observed,
    /// Forecasts issued for that hour.
    Forecast,
}

/// The price of one node for one hour, with the inputs that made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodePrice {
    pub node_id: String,
    pub hour: Hour,
    pub usd_per_chr: f64,
    pub pue: f64,
    /// Units available after heat derating (before reservations).
    pub capacity_units: u32,
    pub it_w_per_unit: f64,
    pub energy_usd_per_mwh: f64,
    pub temp_c: f64,
    pub rh_pct: Option<f64>,
    /// Humidity was missing: cooling was priced as if the air were saturated (worst case).
    pub humidity_assumed: bool,
    pub basis: Basis,
    /// Source timestamps of the inputs, carried end to end.
    pub weather_ts: DateTime<Utc>,
    pub price_ts: DateTime<Utc>,
    /// An input was past its validity: the node is not dispatchable in this hour.
    pub stale: bool,
    /// Set when an operator's what-if override replaced the energy price of this hour:
    /// the market price (USD/MWh) it replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market_usd_per_mwh: Option<f64>,
}

impl NodePrice {
    /// Units a planner may use in this hour.
    pub fn dispatchable_units(&self) -> u32 {
        if self.stale {
            0
        } else {
            self.capacity_units
        }
    }
}

/// One hour's inputs, already chosen.
#[derive(Debug, Clone, Copy)]
pub struct HourInputs {
    pub temp_c: f64,
    pub rh_pct: Option<f64>,
    pub usd_per_mwh: f64,
    pub weather_ts: DateTime<Utc>,
    pub price_ts: DateTime<Utc>,
    pub basis: Basis,
    pub stale: bool,
}

/// Prices one node for one hour through the pricing model.
pub fn price_hour(node: &Node, hour: Hour, inputs: HourInputs) -> NodePrice {
    let q = pricing::quote(
        &node.cooling,
        &node.power,
        node.non_energy_usd_per_chr,
        node.margin,
        inputs.temp_c,
        inputs.rh_pct,
        inputs.usd_per_mwh,
    );
    let capacity_units = (f64::from(node.capacity_units) * q.capacity_fraction).floor() as u32;
    NodePrice {
        node_id: node.id.clone(),
        hour,
        usd_per_chr: q.usd_per_chr,
        pue: q.pue,
        capacity_units,
        it_w_per_unit: q.it_w_per_unit,
        energy_usd_per_mwh: inputs.usd_per_mwh,
        temp_c: inputs.temp_c,
        rh_pct: inputs.rh_pct,
        humidity_assumed: q.humidity_assumed,
        basis: inputs.basis,
        weather_ts: inputs.weather_ts,
        price_ts: inputs.price_ts,
        stale: inputs.stale,
        market_usd_per_mwh: None,
    }
}

/// An operator's what-if: the energy price of a node is taken as `usd_per_mwh` for the
/// hours in [from, to), whatever the market says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceOverride {
    /// Store id (0 before it is stored).
    #[serde(default)]
    pub id: i64,
    pub node_id: String,
    pub from: Hour,
    pub to: Hour,
    pub usd_per_mwh: f64,
}

/// Lowest and highest energy price an override may set (USD/MWh); markets clear inside it.
pub const OVERRIDE_USD_PER_MWH: (f64, f64) = (-1000.0, 20000.0);

impl PriceOverride {
    /// Checks the window and the price, naming what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.to <= self.from {
            return Err(format!(
                "price override window {}..{} is empty: `to` must be after `from`",
                self.from, self.to
            ));
        }
        if self.from.until(self.to) > 24 * 31 {
            return Err(format!(
                "price override window {}..{} is longer than 31 days",
                self.from, self.to
            ));
        }
        let (lo, hi) = OVERRIDE_USD_PER_MWH;
        if !(self.usd_per_mwh.is_finite() && (lo..=hi).contains(&self.usd_per_mwh)) {
            return Err(format!(
                "price override {} USD/MWh: must be a number in {lo}..={hi}",
                self.usd_per_mwh
            ));
        }
        Ok(())
    }

    pub fn covers(&self, node_id: &str, hour: Hour) -> bool {
        self.node_id == node_id && self.from <= hour && hour < self.to
    }
}

impl NodePrice {
    /// The energy price the market gave this hour (before any override).
    pub fn market_price(&self) -> f64 {
        self.market_usd_per_mwh.unwrap_or(self.energy_usd_per_mwh)
    }

    /// This hour repriced at energy price `usd_per_mwh`, all other inputs kept.
    fn repriced(&self, node: &Node, usd_per_mwh: f64) -> NodePrice {
        price_hour(
            node,
            self.hour,
            HourInputs {
                temp_c: self.temp_c,
                rh_pct: self.rh_pct,
                usd_per_mwh,
                weather_ts: self.weather_ts,
                price_ts: self.price_ts,
                basis: self.basis,
                stale: self.stale,
            },
        )
    }
}

/// Applies the overrides that cover each hour of `curve` (the newest, by id, wins) and
/// undoes earlier overrides on hours no override covers any more.
pub fn apply_overrides(
    node: &Node,
    curve: &[NodePrice],
    overrides: &[PriceOverride],
) -> Vec<NodePrice> {
    curve
        .iter()
        .map(|p| {
            let active = overrides
                .iter()
                .filter(|o| o.covers(&node.id, p.hour))
                .max_by_key(|o| o.id);
            match (active, p.market_usd_per_mwh) {
                (Some(o), _) => {
                    let mut q = p.repriced(node, o.usd_per_mwh);
                    q.market_usd_per_mwh = Some(p.market_price());
                    q
                }
                (None, Some(market)) => p.repriced(node, market),
                (None, None) => p.clone(),
            }
        })
        .collect()
}

/// What the store knows about a node's signals.
#[derive(Debug, Clone, Default)]
pub struct NodeSignals {
    pub weather: Option<Observation>,
    pub price: Option<Observation>,
    /// Newest forecast per hour: (temp, rh, issued_at).
    pub weather_forecast: BTreeMap<Hour, (f64, Option<f64>, DateTime<Utc>)>,
    /// Newest forecast per hour: (USD/MWh, issued_at).
    pub price_forecast: BTreeMap<Hour, (f64, DateTime<Utc>)>,
}

/// The node's price curve from `now` over `horizon` hours.
///
/// The current hour is priced from observations; if one is missing or past its validity
/// the hour is still priced (from the forecast, for the operator to see) but marked stale.
/// Later hours come from forecasts; an hour with no forecast of either input is left out,
/// and the planner treats it as unavailable.
pub fn price_curve(
    node: &Node,
    now: DateTime<Utc>,
    horizon: u32,
    s: &NodeSignals,
) -> Vec<NodePrice> {
    let this_hour = Hour::containing(now);
    let mut out = Vec::with_capacity(horizon as usize);
    for h in 0..i64::from(horizon) {
        let hour = this_hour.plus(h);
        let fc_w = s.weather_forecast.get(&hour).copied();
        let fc_p = s.price_forecast.get(&hour).copied();
        let inputs = if h == 0 {
            let w = s.weather.as_ref().and_then(|o| match o.reading {
                Reading::Weather { temp_c, rh_pct } => {
                    Some((temp_c, rh_pct, o.source_ts, o.is_valid_at(now)))
                }
                Reading::Price { .. } => None,
            });
            let p = s.price.as_ref().and_then(|o| match o.reading {
                Reading::Price { usd_per_mwh } => {
                    Some((usd_per_mwh, o.source_ts, o.is_valid_at(now)))
                }
                Reading::Weather { .. } => None,
            });
            let w = w.or(fc_w.map(|(t, rh, at)| (t, rh, at, false)));
            let p = p.or(fc_p.map(|(v, at)| (v, at, false)));
            match (w, p) {
                (Some((temp_c, rh_pct, weather_ts, w_ok)), Some((usd_per_mwh, price_ts, p_ok))) => {
                    Some(HourInputs {
                        temp_c,
                        rh_pct,
                        usd_per_mwh,
                        weather_ts,
                        price_ts,
                        basis: Basis::Observed,
                        stale: !(w_ok && p_ok),
                    })
                }
                _ => None,
            }
        } else {
            // Persistence (the standard naive forecast): without a weather forecast the
            // latest observation stands in. Weather moves PUE by a few percent; prices need
            // a real forecast, so an hour without one stays unpriced.
            let w = fc_w.or_else(|| {
                s.weather.as_ref().and_then(|o| match o.reading {
                    Reading::Weather { temp_c, rh_pct } => Some((temp_c, rh_pct, o.source_ts)),
                    Reading::Price { .. } => None,
                })
            });
            match (w, fc_p) {
                (Some((temp_c, rh_pct, weather_ts)), Some((usd_per_mwh, price_ts))) => {
                    Some(HourInputs {
                        temp_c,
                        rh_pct,
                        usd_per_mwh,
                        weather_ts,
                        price_ts,
                        basis: Basis::Forecast,
                        stale: false,
                    })
                }
                _ => None,
            }
        };
        if let Some(inputs) = inputs {
            out.push(price_hour(node, hour, inputs));
        }
    }
    out
}

/// Test fixture: `hours` hours of `node` from `from`, priced from mild weather (10 °C, 50 %)
/// and 40 USD/MWh as fresh forecasts.
#[cfg(test)]
pub(crate) fn mild_prices(node: &Node, from: Hour, hours: i64) -> Vec<NodePrice> {
    (0..hours)
        .map(|k| {
            price_hour(
                node,
                from.plus(k),
                HourInputs {
                    temp_c: 10.0,
                    rh_pct: Some(50.0),
                    usd_per_mwh: 40.0,
                    weather_ts: from.start(),
                    price_ts: from.start(),
                    basis: Basis::Forecast,
                    stale: false,
                },
            )
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::node::default_fleet;
    use chrono::{Duration, TimeZone};

    #[test]
    fn overrides_reprice_their_window_and_are_undone_when_gone() {
        let node = default_fleet(1).remove(0);
        let curve = price_curve(&node, now(), 6, &signals(0));
        assert!(curve.len() >= 4);
        let h0 = curve[0].hour;
        let o = PriceOverride {
            id: 1,
            node_id: node.id.clone(),
            from: h0.plus(1),
            to: h0.plus(3),
            usd_per_mwh: 500.0,
        };
        o.validate().unwrap();
        let with = apply_overrides(&node, &curve, std::slice::from_ref(&o));
        for (a, b) in curve.iter().zip(&with) {
            if o.covers(&node.id, a.hour) {
                assert_eq!(b.energy_usd_per_mwh, 500.0);
                assert_eq!(b.market_usd_per_mwh, Some(a.energy_usd_per_mwh));
                assert!(b.usd_per_chr > a.usd_per_chr, "a dearer hour costs more");
                assert_eq!(b.capacity_units, a.capacity_units);
            } else {
                assert_eq!(a, b);
            }
        }
        // A newer override wins; with none left the market price comes back.
        let newer = PriceOverride {
            id: 2,
            usd_per_mwh: 1.0,
            ..o.clone()
        };
        let both = apply_overrides(&node, &with, &[o.clone(), newer]);
        assert_eq!(both[1].energy_usd_per_mwh, 1.0);
        assert_eq!(
            both[1].market_usd_per_mwh,
            Some(curve[1].energy_usd_per_mwh)
        );
        let undone = apply_overrides(&node, &both, &[]);
        assert_eq!(undone, curve);
    }

    #[test]
    fn overrides_name_what_is_wrong() {
        let o = |from: i64, to: i64, p: f64| PriceOverride {
            id: 0,
            node_id: "n".into(),
            from: Hour(from),
            to: Hour(to),
            usd_per_mwh: p,
        };
        assert!(o(5, 5, 10.0).validate().unwrap_err().contains("empty"));
        assert!(o(5, 6, f64::NAN)
            .validate()
            .unwrap_err()
            .contains("USD/MWh"));
        assert!(o(5, 6, 1e9).validate().unwrap_err().contains("USD/MWh"));
        assert!(o(0, 10_000, 1.0)
            .validate()
            .unwrap_err()
            .contains("31 days"));
        assert!(o(5, 6, -50.0).validate().is_ok());
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 7, 1, 12, 10, 0).unwrap()
    }

    fn signals(price_age_h: i64) -> NodeSignals {
        let mut s = NodeSignals {
            weather: Some(Observation::new(
                "ash1",
                "t",
                now() - Duration::minutes(10),
                Reading::Weather {
                    temp_c: 20.0,
                    rh_pct: Some(50.0),
                },
            )),
            price: Some(Observation::new(
                "ash1",
                "t",
                Hour::containing(now()).start() - Duration::hours(price_age_h),
                Reading::Price { usd_per_mwh: 50.0 },
            )),
            ..Default::default()
        };
        for h in 1..6 {
            let hour = Hour::containing(now()).plus(h);
            s.weather_forecast.insert(hour, (22.0, Some(50.0), now()));
            s.price_forecast.insert(hour, (40.0 + h as f64, now()));
        }
        s
    }

    #[test]
    fn current_hour_observed_later_hours_forecast() {
        let node = &default_fleet(1)[0];
        let curve = price_curve(node, now(), 8, &signals(0));
        assert_eq!(curve.len(), 6, "hours without forecasts are left out");
        assert_eq!(curve[0].basis, Basis::Observed);
        assert!(!curve[0].stale);
        assert_eq!(curve[0].energy_usd_per_mwh, 50.0);
        assert_eq!(curve[1].basis, Basis::Forecast);
        assert_eq!(curve[1].energy_usd_per_mwh, 41.0);
        assert!(curve[1].usd_per_chr < curve[0].usd_per_chr);
        assert_eq!(curve[0].capacity_units, node.capacity_units);
        assert_eq!(curve[0].dispatchable_units(), node.capacity_units);
    }

    #[test]
    fn expired_price_makes_the_hour_stale_and_undispatchable() {
        let node = &default_fleet(1)[0];
        let curve = price_curve(node, now(), 2, &signals(2));
        assert!(curve[0].stale);
        assert_eq!(curve[0].dispatchable_units(), 0);
    }

    #[test]
    fn missing_humidity_is_priced_conservatively_and_said() {
        let node = &default_fleet(1)[0];
        let mk = |rh| HourInputs {
            temp_c: 30.0,
            rh_pct: rh,
            usd_per_mwh: 60.0,
            weather_ts: now(),
            price_ts: now(),
            basis: Basis::Observed,
            stale: false,
        };
        let dry = price_hour(node, Hour(0), mk(Some(30.0)));
        let unknown = price_hour(node, Hour(0), mk(None));
        assert!(unknown.humidity_assumed && !dry.humidity_assumed);
        assert!(unknown.pue >= dry.pue);
        assert!(unknown.usd_per_chr >= dry.usd_per_chr);
    }
}
