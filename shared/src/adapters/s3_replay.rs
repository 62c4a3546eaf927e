//! Replay of CSV files kept in S3: representative weather and prices from a static store.
//!
//! One object per node and kind, `<prefix>/<node_id>/weather.csv` and
//! `<prefix>/<node_id>/prices.csv`, in the formats of [`csv_replay`](super::csv_replay). The
//! series loops: it is laid over the calendar in whole periods of whole days from its first
//! row, so the clock always falls inside it and the time of day stays true. A node without an
//! object gets no data from this source (an error for that node only).
//!
//! At a speed of S, every real hour replays S hours of the series: the series time is
//! `REPLAY_EPOCH + (now - REPLAY_EPOCH) x S`, and what is read there is stamped back onto the
//! clock (observations at the matching real instant, every S-th forecast hour on consecutive
//! real hours), so the pipeline downstream sees an ordinary, faster-moving world.

use super::csv_replay::{parse, ReplaySource};
use crate::domain::node::Node;
use crate::domain::signal::{Observation, SignalKind};
use crate::domain::time::Hour;
use crate::ports::{Fetched, SignalSource, SourceError};
use chrono::{DateTime, Duration, Utc};
use futures::future::BoxFuture;
use futures::FutureExt;

/// The fixed instant from which a sped-up replay counts (speed 1 is the clock itself).
pub fn replay_epoch() -> DateTime<Utc> {
    DateTime::from_timestamp(1_704_067_200, 0).unwrap_or_default() // 2024-01-01T00:00Z
}

/// The series time shown at `now` when replaying at `speed` series hours per real hour.
pub fn series_time(now: DateTime<Utc>, speed: u32) -> DateTime<Utc> {
    let epoch = replay_epoch();
    epoch + (now - epoch) * i32::try_from(speed.max(1)).unwrap_or(1)
}

/// What was read at series time `at` (see [`series_time`]), stamped onto the clock `now`:
/// an observation `d` before `at` lands `d / speed` before `now`; the forecast keeps every
/// `speed`-th hour from the current one, on consecutive real hours.
pub fn onto_clock(f: Fetched, at: DateTime<Utc>, now: DateTime<Utc>, speed: u32) -> Fetched {
    if speed <= 1 {
        return f;
    }
    let s = i64::from(speed);
    let observations = f
        .observations
        .into_iter()
        .map(|o| {
            let back = Duration::seconds((at - o.source_ts).num_seconds() / s);
            Observation::new(&o.node_id, &o.source, now - back, o.reading)
        })
        .collect();
    let (series_hour, real_hour) = (Hour::containing(at), Hour::containing(now));
    let forecasts = f
        .forecasts
        .into_iter()
        .map(|mut fc| {
            fc.issued_at = real_hour.start();
            fc.points = fc
                .points
                .into_iter()
                .filter_map(|(h, r)| {
                    let d = h.0 - series_hour.0;
                    (d >= 0 && d % s == 0).then(|| (real_hour.plus(d / s), r))
                })
                .collect();
            fc
        })
        .filter(|fc| !fc.points.is_empty())
        .collect();
    Fetched {
        observations,
        forecasts,
        ..f
    }
}

/// Largest replay object read, in bytes (a year of hourly rows is well under 1 MiB).
pub const MAX_REPLAY_OBJECT: i64 = 16 * 1024 * 1024;

/// Where the series starting at `first` and ending at `last` is laid so that `now` falls in
/// it: `first` moved by a whole number of periods, the period being the whole days that
/// cover the series.
pub fn looping_start(
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let span = (last - first).num_seconds().max(0) + 3600;
    let period = Duration::days((span + 86_399) / 86_400);
    let laps = (now - first).num_seconds().div_euclid(period.num_seconds());
    first + period * i32::try_from(laps).unwrap_or(0)
}

pub struct S3Replay {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    kind: SignalKind,
    horizon: u32,
    /// Series hours per real hour (1 = real time).
    speed: u32,
    name: String,
}

impl S3Replay {
    pub fn new(
        client: aws_sdk_s3::Client,
        bucket: impl Into<String>,
        prefix: impl Into<String>,
        kind: SignalKind,
        horizon: u32,
        speed: u32,
    ) -> S3Replay {
        S3Replay {
            client,
            bucket: bucket.into(),
            prefix: prefix.into(),
            kind,
            horizon,
            speed: speed.max(1),
            name: format!("s3-replay-{}", kind.as_str()),
        }
    }

    /// The object key of a node's series.
    pub fn key(&self, node_id: &str) -> String {
        let file = match self.kind {
            SignalKind::Weather => "weather.csv",
            SignalKind::Price => "prices.csv",
        };
        format!("{}/{node_id}/{file}", self.prefix.trim_end_matches('/'))
    }

    async fn read(&self, key: &str) -> Result<String, SourceError> {
        let unavailable = |detail: String| SourceError::Unavailable {
            source_name: self.name.clone(),
            detail,
        };
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                let e = e.into_service_error();
                if e.is_no_such_key() {
                    unavailable(format!("no replay object s3://{}/{key}", self.bucket))
                } else {
                    unavailable(format!(
                        "s3 get s3://{}/{key}: {}",
                        self.bucket,
                        aws_sdk_s3::error::DisplayErrorContext(&e)
                    ))
                }
            })?;
        if out.content_length().unwrap_or(0) > MAX_REPLAY_OBJECT {
            return Err(SourceError::BadResponse {
                source_name: self.name.clone(),
                detail: format!(
                    "s3://{}/{key} is over {MAX_REPLAY_OBJECT} bytes",
                    self.bucket
                ),
            });
        }
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| unavailable(format!("reading s3://{}/{key}: {e}", self.bucket)))?
            .into_bytes();
        String::from_utf8(bytes.to_vec()).map_err(|_| SourceError::BadResponse {
            source_name: self.name.clone(),
            detail: format!("s3://{}/{key} is not UTF-8 text", self.bucket),
        })
    }
}

impl SignalSource for S3Replay {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SignalKind {
        self.kind
    }

    fn fetch<'a>(
        &'a self,
        node: &'a Node,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Fetched, SourceError>> {
        async move {
            let key = self.key(&node.id);
            let text = self.read(&key).await?;
            let bad = |detail: String| SourceError::BadResponse {
                source_name: self.name.clone(),
                detail: format!("s3://{}/{key}: {detail}", self.bucket),
            };
            let (rows, _) = parse(self.kind, &text);
            let first = rows.iter().map(|r| r.ts).min();
            let last = rows.iter().map(|r| r.ts).max();
            let (Some(first), Some(last)) = (first, last) else {
                return Err(bad("no usable rows".into()));
            };
            let at = series_time(now, self.speed);
            // Enough series hours for the horizon at this speed.
            let horizon = self.horizon.saturating_mul(self.speed);
            let replay = ReplaySource::new(
                &node.id,
                self.kind,
                &text,
                looping_start(first, last, at),
                horizon,
            )
            .map_err(bad)?;
            let fetched = replay.fetch(node, at).await?;
            Ok(onto_clock(fetched, at, now, self.speed))
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
            .single()
            .unwrap_or_default()
    }

    #[test]
    fn the_series_is_moved_by_whole_periods_so_now_falls_inside_it() {
        // 3 days of hourly rows: 2018-04-17 00:00 .. 2018-04-19 23:00, period 3 days.
        let (first, last) = (t(2018, 4, 17, 0), t(2018, 4, 19, 23));
        for now in [t(2026, 11, 28, 13), t(2018, 4, 18, 5), t(2010, 1, 1, 0)] {
            let start = looping_start(first, last, now);
            assert!(
                start <= now && now < start + Duration::days(3),
                "{now}: {start}"
            );
            assert_eq!((start - first).num_seconds() % (3 * 86_400), 0);
        }
        // Inside the series: not moved at all.
        assert_eq!(looping_start(first, last, t(2018, 4, 19, 12)), first);
    }

    #[test]
    fn a_sped_up_replay_moves_the_series_faster_than_the_clock() {
        let now = t(2026, 11, 28, 13);
        assert_eq!(series_time(now, 1), now);
        let later = now + Duration::hours(1);
        assert_eq!(
            series_time(later, 24) - series_time(now, 24),
            Duration::hours(24)
        );
    }

    #[test]
    fn what_is_read_at_series_time_lands_on_the_clock() {
        use crate::domain::signal::{Forecast, Reading};
        let (at, now) = (t(2030, 5, 1, 10), t(2026, 11, 28, 13));
        let price = |p| Reading::Price { usd_per_mwh: p };
        let f = Fetched {
            observations: vec![Observation::new(
                "n",
                "s",
                at - Duration::hours(2),
                price(1.0),
            )],
            forecasts: vec![Forecast {
                node_id: "n".into(),
                kind: SignalKind::Price,
                issued_at: at,
                points: (0..9)
                    .map(|k| (Hour::containing(at).plus(k), price(f64::from(k as i32))))
                    .collect(),
                source: "s".into(),
            }],
            ..Fetched::default()
        };
        let out = onto_clock(f.clone(), at, now, 4);
        assert_eq!(out.observations[0].source_ts, now - Duration::minutes(30));
        assert!(out.observations[0].is_valid_at(now));
        let h = Hour::containing(now);
        assert_eq!(
            out.forecasts[0].points,
            vec![
                (h, price(0.0)),
                (h.plus(1), price(4.0)),
                (h.plus(2), price(8.0))
            ]
        );
        assert_eq!(out.forecasts[0].issued_at, h.start());
        // Speed 1 changes nothing.
        let same = onto_clock(f.clone(), at, at, 1);
        assert_eq!(
            (same.observations, same.forecasts),
            (f.observations, f.forecasts)
        );
    }

    #[test]
    fn a_single_row_loops_daily() {
        let first = t(2020, 1, 1, 6);
        let start = looping_start(first, first, t(2026, 3, 4, 10));
        assert_eq!(start, t(2026, 3, 4, 6));
    }
}
