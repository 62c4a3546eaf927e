//! A generator of representative signal streams per location, as a signal source, with
//! the network's faults on demand (delay, loss, duplicates, out-of-order resends, bursts,
//! glitched values). Deterministic for a seed, so two runs see the same world.

use crate::domain::node::Node;
use crate::domain::signal::{Forecast, Observation, Reading, SignalKind};
use crate::domain::synth::{self, Climate, MarketProfile};
use crate::domain::time::Hour;
use crate::ports::{Fetched, RawPayload, SignalSource, SourceError};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::FutureExt;
use std::collections::HashSet;
use std::time::Duration;

/// Faults to inject, as probabilities per fetch (0 = never).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    /// The observation is lost.
    pub loss: f64,
    /// The observation arrives twice.
    pub duplicate: f64,
    /// An older observation is resent alongside (out of order).
    pub reorder: f64,
    /// The source is down for this fetch; the next one brings the missed hours at once.
    pub burst: f64,
    /// A sensor glitch: a physically impossible value.
    pub glitch: f64,
    /// Added latency per fetch.
    pub delay: Duration,
}

impl Faults {
    pub const NONE: Faults = Faults {
        loss: 0.0,
        duplicate: 0.0,
        reorder: 0.0,
        burst: 0.0,
        glitch: 0.0,
        delay: Duration::ZERO,
    };

    /// A realistic mix for demos: every kind, none overwhelming.
    pub fn typical() -> Faults {
        Faults {
            loss: 0.02,
            duplicate: 0.05,
            reorder: 0.05,
            burst: 0.02,
            glitch: 0.01,
            delay: Duration::ZERO,
        }
    }

    /// Parses `loss=0.1,dup=0.05,reorder=0.05,burst=0.02,glitch=0.01,delay-ms=20`,
    /// `none` or `typical`.
    pub fn parse(s: &str) -> Result<Faults, String> {
        match s.trim() {
            "none" | "" => return Ok(Faults::NONE),
            "typical" => return Ok(Faults::typical()),
            _ => {}
        }
        let mut f = Faults::NONE;
        for part in s.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("fault `{part}`: expected name=value"))?;
            let x: f64 = v
                .trim()
                .parse()
                .map_err(|_| format!("fault `{k}`: `{v}` is not a number"))?;
            let prob = |x: f64| {
                if (0.0..=1.0).contains(&x) {
                    Ok(x)
                } else {
                    Err(format!("fault `{k}` = {x}: must be a probability 0..1"))
                }
            };
            match k.trim() {
                "loss" => f.loss = prob(x)?,
                "dup" | "duplicate" => f.duplicate = prob(x)?,
                "reorder" => f.reorder = prob(x)?,
                "burst" => f.burst = prob(x)?,
                "glitch" => f.glitch = prob(x)?,
                "delay-ms" if (0.0..=60_000.0).contains(&x) => {
                    f.delay = Duration::from_millis(x as u64)
                }
                "delay-ms" => return Err(format!("fault `delay-ms` = {x}: must be 0..60000")),
                other => {
                    return Err(format!(
                    "unknown fault `{other}` (known: loss, dup, reorder, burst, glitch, delay-ms)"
                ))
                }
            }
        }
        Ok(f)
    }
}

/// The market profile for a node's `market` (operator:zone).
pub fn market_profile(node: &Node) -> MarketProfile {
    let zone = node.market.to_ascii_uppercase();
    match node.market_operator().as_str() {
        "pjm" | "nyiso" | "miso" => MarketProfile::pjm_like(),
        "ercot" => MarketProfile::texas_like(),
        "nordpool" => MarketProfile::nordic_like(),
        "caiso" => {
            // Duck curve: deep solar dip at midday, Pacific time.
            let mut m = MarketProfile::pjm_like();
            m.solar_dip = 0.6;
            m.utc_offset_h = -8;
            m
        }
        "entsoe" | "energy-charts" if zone.ends_with(":FR") => MarketProfile::france_like(),
        "entsoe" | "energy-charts" if zone.contains(":SE") || zone.contains(":NO") => {
            MarketProfile::nordic_like()
        }
        "entsoe" | "energy-charts" => MarketProfile::germany_like(),
        _ => {
            let mut m = MarketProfile::pjm_like();
            m.utc_offset_h = (node.lon / 15.0).round() as i32;
            m
        }
    }
}

/// Which stream a source generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Weather,
    Price,
}

/// A generated source for one kind of signal.
pub struct SyntheticSource {
    stream: Stream,
    seed: u64,
    horizon: u32,
    faults: Faults,
    name: String,
    /// Nodes another source (e.g. a replay) feeds instead.
    except: HashSet<String>,
}

impl SyntheticSource {
    pub fn new(stream: Stream, seed: u64, horizon: u32, faults: Faults) -> SyntheticSource {
        let name = match stream {
            Stream::Weather => "synthetic-weather",
            Stream::Price => "synthetic-prices",
        };
        SyntheticSource {
            stream,
            seed,
            horizon,
            faults,
            name: name.to_string(),
            except: HashSet::new(),
        }
    }

    /// Leaves these nodes to another source.
    pub fn except(mut self, nodes: impl IntoIterator<Item = String>) -> SyntheticSource {
        self.except.extend(nodes);
        self
    }

    fn key(&self, node: &Node) -> u64 {
        match self.stream {
            // Nodes in one market zone see one price.
            Stream::Price => synth::key_of(&node.market),
            Stream::Weather => synth::key_of(&node.id),
        }
    }

    fn actual(&self, node: &Node, hour: Hour) -> Reading {
        match self.stream {
            Stream::Weather => {
                let (t, rh) = synth::weather_actual(
                    self.seed,
                    self.key(node),
                    &Climate::for_location(node.lat, node.lon),
                    hour.0,
                );
                Reading::Weather {
                    temp_c: t,
                    rh_pct: Some(rh),
                }
            }
            Stream::Price => Reading::Price {
                usd_per_mwh: synth::price_actual(
                    self.seed,
                    self.key(node),
                    &market_profile(node),
                    hour.0,
                ),
            },
        }
    }

    fn forecast(&self, node: &Node, target: Hour, issued: Hour) -> Reading {
        match self.stream {
            Stream::Weather => {
                let (t, rh) = synth::weather_forecast(
                    self.seed,
                    self.key(node),
                    &Climate::for_location(node.lat, node.lon),
                    target.0,
                    issued.0,
                );
                Reading::Weather {
                    temp_c: t,
                    rh_pct: Some(rh),
                }
            }
            Stream::Price => Reading::Price {
                usd_per_mwh: synth::price_forecast(
                    self.seed,
                    self.key(node),
                    &market_profile(node),
                    target.0,
                    issued.0,
                ),
            },
        }
    }

    /// A uniform draw in [0, 1) for (node, hour, what): the faults are part of the world.
    fn draw(&self, node: &Node, hour: Hour, what: u64) -> f64 {
        let mut x = self.seed
            ^ synth::key_of(&node.id).rotate_left(17)
            ^ (hour.0 as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ what.wrapping_mul(0xD1B5_4A32_D192_ED03);
        x ^= x >> 30;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x ^= x >> 27;
        x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    fn observation(&self, node: &Node, hour: Hour) -> Observation {
        Observation::new(&node.id, &self.name, hour.start(), self.actual(node, hour))
    }

    /// What one fetch at `now` returns, faults included.
    pub fn generate(&self, node: &Node, now: DateTime<Utc>) -> Result<Fetched, SourceError> {
        if self.except.contains(&node.id) {
            return Ok(Fetched::default());
        }
        let hour = Hour::containing(now);
        let f = &self.faults;
        if self.draw(node, hour, 1) < f.burst {
            return Err(SourceError::Unavailable {
                source_name: self.name.clone(),
                detail: "injected outage".into(),
            });
        }
        let mut fetched = Fetched::default();
        // After an outage the source sends what it held back, oldest first.
        let mut back = 1;
        while back <= 6 && self.draw(node, hour.plus(-back), 1) < f.burst {
            fetched
                .observations
                .push(self.observation(node, hour.plus(-back)));
            back += 1;
        }
        fetched.observations.reverse();
        if self.draw(node, hour, 2) >= f.loss {
            let mut obs = self.observation(node, hour);
            if self.draw(node, hour, 3) < f.glitch {
                obs.reading = match obs.reading {
                    // A real station glitch: -224.8 F.
                    Reading::Weather { rh_pct, .. } => Reading::Weather {
                        temp_c: -142.7,
                        rh_pct,
                    },
                    Reading::Price { .. } => Reading::Price {
                        usd_per_mwh: f64::NAN,
                    },
                };
            }
            if self.draw(node, hour, 4) < f.duplicate {
                fetched.observations.push(obs.clone());
            }
            fetched.observations.push(obs);
        }
        if self.draw(node, hour, 5) < f.reorder {
            let age = 1 + (self.draw(node, hour, 6) * 3.0) as i64;
            fetched
                .observations
                .push(self.observation(node, hour.plus(-age)));
        }
        let points = (1..=i64::from(self.horizon))
            .map(|k| (hour.plus(k), self.forecast(node, hour.plus(k), hour)))
            .collect();
        fetched.forecasts.push(Forecast {
            node_id: node.id.clone(),
            kind: self.kind(),
            issued_at: hour.start(),
            points,
            source: self.name.clone(),
        });
        // The generator's "wire format": what it sent, as JSON, for the archive.
        let wire = serde_json::json!({
            "observations": fetched.observations,
            "forecasts": fetched.forecasts,
        });
        fetched.raw = Some(RawPayload {
            content_type: "application/json".into(),
            extension: "json".into(),
            bytes: serde_json::to_vec(&wire).unwrap_or_default(),
        });
        Ok(fetched)
    }

    /// The true value at `hour`, for settling costs after the fact.
    pub fn truth(&self, node: &Node, hour: Hour) -> Reading {
        self.actual(node, hour)
    }
}

impl SignalSource for SyntheticSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SignalKind {
        match self.stream {
            Stream::Weather => SignalKind::Weather,
            Stream::Price => SignalKind::Price,
        }
    }

    fn fetch<'a>(
        &'a self,
        node: &'a Node,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Fetched, SourceError>> {
        async move {
            if !self.faults.delay.is_zero() {
                tokio::time::sleep(self.faults.delay).await;
            }
            self.generate(node, now)
        }
        .boxed()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::node::default_fleet;

    fn at(h: i64) -> DateTime<Utc> {
        Hour(493_000 + h).start()
    }

    #[test]
    fn clean_source_sends_one_observation_and_a_forecast() {
        let node = &default_fleet(1)[0];
        let s = SyntheticSource::new(Stream::Price, 7, 24, Faults::NONE);
        let f = s.generate(node, at(0)).unwrap();
        assert_eq!(f.observations.len(), 1);
        assert_eq!(f.observations[0].source_ts, at(0));
        assert!(f.observations[0].reading.check().is_ok());
        assert_eq!(f.forecasts[0].points.len(), 24);
        assert_eq!(
            s.generate(node, at(0)).unwrap().observations,
            f.observations,
            "deterministic"
        );
    }

    #[test]
    fn faults_produce_each_kind_of_bad_record() {
        let node = &default_fleet(1)[0];
        let faults = Faults {
            loss: 0.1,
            duplicate: 0.2,
            reorder: 0.2,
            burst: 0.1,
            glitch: 0.1,
            delay: Duration::ZERO,
        };
        let s = SyntheticSource::new(Stream::Weather, 7, 4, faults);
        let (mut outages, mut dups, mut olds, mut glitches, mut empty) = (0, 0, 0, 0, 0);
        for h in 0..500 {
            match s.generate(node, at(h)) {
                Err(_) => outages += 1,
                Ok(f) => {
                    let now_ts = at(h);
                    let cur: Vec<_> = f
                        .observations
                        .iter()
                        .filter(|o| o.source_ts == now_ts)
                        .collect();
                    if cur.is_empty() {
                        empty += 1;
                    }
                    if cur.len() > 1 {
                        dups += 1;
                    }
                    olds += f
                        .observations
                        .iter()
                        .filter(|o| o.source_ts < now_ts)
                        .count();
                    glitches += cur.iter().filter(|o| o.reading.check().is_err()).count();
                }
            }
        }
        assert!(
            outages > 20 && dups > 40 && olds > 80 && glitches > 10 && empty > 20,
            "{outages} {dups} {olds} {glitches} {empty}"
        );
    }

    #[test]
    fn fault_specs_parse_with_clear_errors() {
        assert_eq!(Faults::parse("none").unwrap(), Faults::NONE);
        let f = Faults::parse("loss=0.1,dup=0.2,delay-ms=5").unwrap();
        assert_eq!(f.loss, 0.1);
        assert_eq!(f.delay, Duration::from_millis(5));
        assert!(Faults::parse("loss=2").unwrap_err().contains("loss"));
        assert!(Faults::parse("jitter=0.1").unwrap_err().contains("jitter"));
        assert!(Faults::parse("loss").unwrap_err().contains("name=value"));
    }

    #[test]
    fn markets_map_to_profiles() {
        let fleet = default_fleet(8);
        let texas = fleet
            .iter()
            .find(|n| n.market.starts_with("ercot"))
            .unwrap();
        assert_eq!(market_profile(texas), MarketProfile::texas_like());
        let fr = fleet.iter().find(|n| n.market.ends_with(":FR")).unwrap();
        assert_eq!(market_profile(fr), MarketProfile::france_like());
    }
}
