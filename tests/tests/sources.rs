//! The real HTTP sources against a local fake server: per source, success, 429 with
//! Retry-After, 500, timeout, truncated and garbage bodies, missing fields, nulls and a zone
//! that no longer exists; one call per shared zone or grid cell; a slow and a failing source
//! do not hold up the rest.

#![allow(clippy::unwrap_used)]

#[path = "../fixtures/sources/fake_server.rs"]
mod fake_server;

use chrono::{DateTime, TimeZone, Utc};
use fake_server::{FakeServer, Reply};
use grd::adapters::sources::http::{
    EnergyChartsSource, HttpClient, HttpConfig, NwsSource, NyisoSource, OpenMeteoSource,
};
use grd::adapters::sources::nyiso::Market;
use grd::adapters::sqlite::SqliteStore;
use grd::app::fetch_signals::{fetch_signals, FetchLimits};
use grd::domain::node::{default_fleet, Node, NodeSources, PriceProvider, WeatherProvider};
use grd::domain::signal::Reading;
use grd::ports::{
    Fetched, NodeStore, RawArchive, RawPayload, SignalSource, SourceError, StoreError,
};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Provider {
    OpenMeteo,
    Nws,
    EnergyCharts,
    Nyiso,
}

const ALL: [Provider; 4] = [
    Provider::OpenMeteo,
    Provider::Nws,
    Provider::EnergyCharts,
    Provider::Nyiso,
];

/// The path whose reply a scenario scripts (NWS: the hourly forecast; its other documents
/// answer normally).
fn scripted_path(p: Provider) -> &'static str {
    match p {
        Provider::OpenMeteo => "/v1/forecast",
        Provider::Nws => "/gridpoints/",
        Provider::EnergyCharts => "/price",
        Provider::Nyiso => "/public/csv/damlbmp/",
    }
}

fn node(p: Provider, id: &str, lat: f64, lon: f64) -> Node {
    let mut n = default_fleet(1).remove(0);
    n.id = id.into();
    n.lat = lat;
    n.lon = lon;
    n.sources = NodeSources::default();
    match p {
        Provider::OpenMeteo => n.sources.weather = Some(WeatherProvider::OpenMeteo),
        Provider::Nws => n.sources.weather = Some(WeatherProvider::Nws),
        Provider::EnergyCharts => {
            n.market = "entsoe:DE-LU".into();
            n.sources.prices = Some(PriceProvider::EnergyCharts);
        }
        Provider::Nyiso => {
            n.market = "nyiso:N.Y.C.".into();
            n.sources.prices = Some(PriceProvider::NyisoDayAhead);
        }
    }
    n
}

fn ts(h: u32) -> i64 {
    Utc.with_ymd_and_hms(2026, 6, 1, h, 0, 0)
        .unwrap()
        .timestamp()
}

/// Variants of a provider's document, written after its documented format.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Body {
    Good,
    /// One record lacks a field.
    Missing,
    /// One record has a null value.
    Nulls,
}

fn body(p: Provider, b: Body) -> Reply {
    match p {
        Provider::OpenMeteo => {
            let temps = match b {
                Body::Good => "[20.5,21.0,22.5]",
                Body::Missing => "[20.5,21.0]",
                Body::Nulls => "[20.5,null,22.5]",
            };
            Reply::json(
                200,
                format!(
                    r#"{{"latitude":39.0,"longitude":-77.5,"utc_offset_seconds":0,"current_units":{{"temperature_2m":"°C"}},
                    "current":{{"time":"2026-06-01T12:00","interval":900,"temperature_2m":20.4,"relative_humidity_2m":55,"dew_point_2m":11.0}},
                    "hourly_units":{{"temperature_2m":"°C"}},
                    "hourly":{{"time":["2026-06-01T12:00","2026-06-01T13:00","2026-06-01T14:00"],"temperature_2m":{temps},
                      "relative_humidity_2m":[55,50,45],"dew_point_2m":[11.0,10.4,10.0]}}}}"#
                ),
            )
        }
        Provider::Nws => {
            let third = match b {
                Body::Good => r#""temperature":75,"temperatureUnit":"F""#,
                Body::Missing => r#""temperature":75"#,
                Body::Nulls => r#""temperature":null,"temperatureUnit":"F""#,
            };
            Reply::new(
                200,
                "application/geo+json",
                format!(
                    r#"{{"type":"Feature","properties":{{"updateTime":"2026-06-01T11:20:00+00:00","periods":[
                    {{"number":1,"startTime":"2026-06-01T08:00:00-04:00","temperature":70,"temperatureUnit":"F",
                      "relativeHumidity":{{"unitCode":"wmoUnit:percent","value":60}}}},
                    {{"number":2,"startTime":"2026-06-01T09:00:00-04:00","temperature":72,"temperatureUnit":"F",
                      "relativeHumidity":{{"unitCode":"wmoUnit:percent","value":58}}}},
                    {{"number":3,"startTime":"2026-06-01T10:00:00-04:00",{third},
                      "relativeHumidity":{{"unitCode":"wmoUnit:percent","value":55}}}}]}}}}"#
                ),
            )
        }
        Provider::EnergyCharts => {
            let prices = match b {
                Body::Good => "[80.5,95.25,-3.0,110.0]",
                Body::Missing => "[80.5,95.25,-3.0]",
                Body::Nulls => "[80.5,95.25,null,110.0]",
            };
            Reply::json(
                200,
                format!(
                    r#"{{"license_info":"CC BY 4.0","unix_seconds":[{},{},{},{}],"price":{prices},"unit":"EUR / MWh","deprecated":false}}"#,
                    ts(11),
                    ts(12),
                    ts(13),
                    ts(14)
                ),
            )
        }
        Provider::Nyiso => {
            let last = match b {
                Body::Good => r#""06/01/2026 10:00","N.Y.C.",61761,55.00,1.0,0.0"#,
                Body::Missing => r#""06/01/2026 10:00","N.Y.C.""#,
                Body::Nulls => r#""06/01/2026 10:00","N.Y.C.",61761,,1.0,0.0"#,
            };
            Reply::new(
                200,
                "text/csv",
                format!(
                    "\"Time Stamp\",\"Name\",\"PTID\",\"LBMP ($/MWHr)\",\"Marginal Cost Losses ($/MWHr)\",\"Marginal Cost Congestion ($/MWHr)\"\n\
                     \"06/01/2026 07:00\",\"N.Y.C.\",61761,41.10,1.0,0.0\n\
                     \"06/01/2026 07:00\",\"WEST\",61752,20.00,1.0,0.0\n\
                     \"06/01/2026 08:00\",\"N.Y.C.\",61761,44.20,1.0,0.0\n\
                     \"06/01/2026 09:00\",\"N.Y.C.\",61761,47.30,1.0,0.0\n\
                     {last}\n"
                ),
            )
        }
    }
}

/// Answers NWS's other documents (points, stations, observation) normally.
fn nws_support(base: &str, target: &str) -> Option<Reply> {
    if target.starts_with("/points/") {
        return Some(Reply::json(
            200,
            format!(
                r#"{{"properties":{{"gridId":"LWX","gridX":90,"gridY":70,
                "forecastHourly":"{base}/gridpoints/LWX/90,70/forecast/hourly",
                "observationStations":"{base}/stations-of/LWX/90,70"}}}}"#
            ),
        ));
    }
    if target.starts_with("/stations-of/") {
        return Some(Reply::json(
            200,
            r#"{"features":[{"properties":{"stationIdentifier":"KIAD"}},{"properties":{"stationIdentifier":"KDCA"}}]}"#,
        ));
    }
    if target.starts_with("/stations/KIAD/observations/latest") {
        return Some(Reply::json(
            200,
            r#"{"properties":{"timestamp":"2026-06-01T11:52:00+00:00",
                "temperature":{"unitCode":"wmoUnit:degC","value":21.1,"qualityControl":"V"},
                "dewpoint":{"unitCode":"wmoUnit:degC","value":12.0,"qualityControl":"V"},
                "relativeHumidity":{"unitCode":"wmoUnit:percent","value":null,"qualityControl":"Z"}}}"#,
        ));
    }
    None
}

fn config() -> HttpConfig {
    HttpConfig {
        timeout: Duration::from_millis(400),
        retries: 2,
        backoff_base: Duration::from_millis(10),
        max_backoff: Duration::from_secs(2),
        max_in_flight: 8,
        user_agent: "grd-tests (ops@example.com)".into(),
        ..HttpConfig::default()
    }
}

fn source(
    p: Provider,
    base: &str,
    http: HttpConfig,
    archive: Option<Arc<dyn RawArchive>>,
) -> (Arc<dyn SignalSource>, Arc<HttpClient>) {
    let client = Arc::new(HttpClient::new(http).unwrap());
    let s: Arc<dyn SignalSource> = match p {
        Provider::OpenMeteo => Arc::new(OpenMeteoSource::new(client.clone(), base, None, archive)),
        Provider::Nws => Arc::new(NwsSource::new(client.clone(), base, archive)),
        Provider::EnergyCharts => {
            Arc::new(EnergyChartsSource::new(client.clone(), base, 1.10, archive))
        }
        Provider::Nyiso => Arc::new(NyisoSource::new(
            client.clone(),
            base,
            Market::DayAhead,
            archive,
        )),
    };
    (s, client)
}

/// Runs one fetch against a server whose scripted path answers `reply(n)` on its n-th hit.
async fn scenario(
    p: Provider,
    reply: impl Fn(usize) -> Reply + Send + Sync + 'static,
) -> (Result<Fetched, SourceError>, usize, Duration) {
    let base = Arc::new(Mutex::new(String::new()));
    let b = base.clone();
    let server = FakeServer::start(move |target, n| {
        if p == Provider::Nws {
            if let Some(r) = nws_support(&b.lock().unwrap(), target) {
                return r;
            }
        }
        if target.starts_with(scripted_path(p)) {
            reply(n)
        } else {
            Reply::json(404, r#"{"detail":"no such path"}"#)
        }
    });
    *base.lock().unwrap() = server.base.clone();
    let (src, _) = source(p, &server.base, config(), None);
    let n = node(p, "n1", 39.04, -77.49);
    let started = Instant::now();
    let r = src.fetch(&n, now()).await;
    (r, server.hits(scripted_path(p)), started.elapsed())
}

fn expect_err(p: Provider, r: Result<Fetched, SourceError>) -> SourceError {
    match r {
        Ok(f) => panic!("{p:?}: expected an error, got {f:?}"),
        Err(e) => e,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_gives_observations_forecasts_and_the_raw_payload() {
    for p in ALL {
        let (r, hits, _) = scenario(p, move |_| body(p, Body::Good)).await;
        let f = r.unwrap_or_else(|e| panic!("{p:?}: {e}"));
        assert_eq!(hits, 1, "{p:?}");
        assert!(f.malformed.is_empty(), "{p:?}: {:?}", f.malformed);
        let points: usize = f.forecasts.iter().map(|f| f.points.len()).sum();
        let raw = f
            .raw
            .as_ref()
            .unwrap_or_else(|| panic!("{p:?}: no raw payload"));
        assert!(!raw.bytes.is_empty());
        match p {
            Provider::OpenMeteo => {
                assert_eq!(f.observations.len(), 1);
                assert_eq!(points, 3);
                assert_eq!(raw.extension, "json");
            }
            Provider::Nws => {
                assert_eq!(f.observations.len(), 1);
                // 08:00-04:00 is 12:00 UTC: all three hours are from now on.
                assert_eq!(points, 3);
                match f.observations[0].reading {
                    Reading::Weather {
                        temp_c,
                        rh_pct: Some(rh),
                    } => {
                        assert_eq!(temp_c, 21.1);
                        assert!((rh - 56.4).abs() < 1.0, "RH from the dew point: {rh}");
                    }
                    other => panic!("{other:?}"),
                }
            }
            Provider::EnergyCharts => {
                // 11:00 and 12:00 have started; 13:00 and 14:00 are ahead.
                assert_eq!(f.observations.len(), 2);
                assert_eq!(points, 2);
                assert_eq!(
                    f.observations[1].reading,
                    Reading::Price {
                        usd_per_mwh: 95.25 * 1.10
                    }
                );
            }
            Provider::Nyiso => {
                // 07:00 and 08:00 EDT are 11:00 and 12:00 UTC.
                assert_eq!(f.observations.len(), 2);
                assert_eq!(points, 2);
                assert_eq!(raw.extension, "csv");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_is_waited_out_then_succeeds() {
    for p in ALL {
        let (r, hits, took) = scenario(p, move |n| {
            if n == 0 {
                Reply::json(429, r#"{"reason":"slow down"}"#).header("Retry-After", "1")
            } else {
                body(p, Body::Good)
            }
        })
        .await;
        assert!(r.is_ok(), "{p:?}: {r:?}");
        assert_eq!(hits, 2, "{p:?}");
        assert!(
            took >= Duration::from_millis(950),
            "{p:?}: waited only {took:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_500_fails_after_the_retries() {
    for p in ALL {
        let (r, hits, _) = scenario(p, |_| Reply::json(500, "upstream exploded")).await;
        let e = expect_err(p, r);
        assert!(
            matches!(&e, SourceError::Unavailable { detail, .. } if detail.contains("HTTP 500")),
            "{p:?}: {e}"
        );
        assert_eq!(hits, 3, "{p:?}: one attempt and two retries");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_server_times_out() {
    for p in ALL {
        let (r, hits, took) = scenario(p, move |_| {
            body(p, Body::Good).delayed(Duration::from_secs(5))
        })
        .await;
        let e = expect_err(p, r);
        assert!(matches!(e, SourceError::Timeout { .. }), "{p:?}: {e}");
        assert_eq!(hits, 3, "{p:?}");
        assert!(took < Duration::from_secs(3), "{p:?}: took {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_body_is_a_failure_not_half_the_data() {
    for p in ALL {
        let (r, _, _) = scenario(p, move |_| body(p, Body::Good).truncated(40)).await;
        let e = expect_err(p, r);
        assert!(
            matches!(&e, SourceError::Unavailable { detail, .. } if detail.contains("body cut short")),
            "{p:?}: {e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_body_is_a_bad_response() {
    for p in ALL {
        let (r, hits, _) = scenario(p, |_| {
            Reply::new(200, "text/html", "<html><body>maintenance</body></html>")
        })
        .await;
        let e = expect_err(p, r);
        assert!(matches!(e, SourceError::BadResponse { .. }), "{p:?}: {e}");
        assert_eq!(hits, 1, "{p:?}: garbage is not retried");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_fields_and_nulls_cost_only_their_records() {
    for p in ALL {
        for b in [Body::Missing, Body::Nulls] {
            let (r, _, _) = scenario(p, move |_| body(p, b)).await;
            let f = r.unwrap_or_else(|e| panic!("{p:?} {b:?}: {e}"));
            assert_eq!(f.malformed.len(), 1, "{p:?} {b:?}: {:?}", f.malformed);
            assert_eq!(f.malformed[0].reason(), "malformed");
            let kept =
                f.observations.len() + f.forecasts.iter().map(|f| f.points.len()).sum::<usize>();
            assert!(
                kept >= 3,
                "{p:?} {b:?}: the other records are kept ({kept})"
            );
        }
    }
    // A document without its required arrays is a bad response naming the field.
    let (r, _, _) = scenario(Provider::OpenMeteo, |_| {
        Reply::json(200, r#"{"hourly":{"time":["2026-06-01T12:00"]}}"#)
    })
    .await;
    let e = expect_err(Provider::OpenMeteo, r);
    assert!(e.to_string().contains("hourly.temperature_2m"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_that_no_longer_exists_is_named() {
    for p in ALL {
        let (r, hits, _) = scenario(p, move |_| match p {
            Provider::Nyiso => Reply::new(
                200,
                "text/csv",
                "\"Time Stamp\",\"Name\",\"PTID\",\"LBMP ($/MWHr)\"\n\"06/01/2026 07:00\",\"WEST\",61752,20.00\n",
            ),
            Provider::EnergyCharts => {
                Reply::json(404, r#"{"detail":"Bidding zone DE-LU not found"}"#)
            }
            _ => Reply::json(404, r#"{"detail":"Unable to provide data for requested point"}"#),
        })
        .await;
        let e = expect_err(p, r);
        let text = e.to_string();
        match p {
            Provider::Nyiso => assert!(text.contains("zone `N.Y.C.` is not in the file"), "{text}"),
            _ => assert!(text.contains("not found (HTTP 404)"), "{p:?}: {text}"),
        }
        assert_eq!(hits, 1, "{p:?}: a 404 is not retried");
    }
    // An empty answer for the zone: nothing to use, said plainly.
    let (r, _, _) = scenario(Provider::EnergyCharts, |_| {
        Reply::json(200, r#"{"unix_seconds":[],"price":[],"unit":"EUR / MWh"}"#)
    })
    .await;
    let f = r.unwrap();
    assert!(f.observations.is_empty() && f.forecasts.is_empty());
}

#[derive(Default)]
struct MemArchive(Mutex<Vec<String>>);

impl RawArchive for MemArchive {
    fn put<'a>(
        &'a self,
        key: &'a str,
        _payload: &'a RawPayload,
    ) -> futures::future::BoxFuture<'a, Result<(), StoreError>> {
        self.0.lock().unwrap().push(key.to_string());
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_sharing_a_zone_or_cell_cost_one_call_archived_once() {
    for p in [Provider::OpenMeteo, Provider::EnergyCharts, Provider::Nyiso] {
        let server = FakeServer::start(move |target, _| {
            if target.starts_with(scripted_path(p)) {
                body(p, Body::Good)
            } else {
                Reply::json(404, "{}")
            }
        });
        let archive = Arc::new(MemArchive::default());
        let (src, client) = source(p, &server.base, config(), Some(archive.clone()));
        // Three nodes in one cell (and zone), one elsewhere.
        let nodes = [
            node(p, "a", 39.041, -77.488),
            node(p, "b", 39.039, -77.491),
            node(p, "c", 39.042, -77.487),
            node(p, "d", 45.0, -70.0),
        ];
        let results = futures::future::join_all(nodes.iter().map(|n| src.fetch(n, now()))).await;
        for r in &results {
            let f = r.as_ref().unwrap();
            assert!(!f.observations.is_empty(), "{p:?}");
            assert!(f.raw.is_none(), "{p:?}: archived by the source itself");
        }
        let expected = if p == Provider::OpenMeteo { 2 } else { 1 };
        assert_eq!(server.hits(scripted_path(p)), expected, "{p:?}");
        assert_eq!(client.attempts(), expected as u64, "{p:?}");
        let keys = archive.0.lock().unwrap().clone();
        assert_eq!(keys.len(), expected, "{p:?}: {keys:?}");
        let name = src.name().to_string();
        assert!(
            keys.iter().all(
                |k| k.starts_with(&format!("raw/{name}/")) && k.contains("/2026-06-01/120000.")
            ),
            "{keys:?}"
        );
        if p == Provider::EnergyCharts {
            assert_eq!(keys[0], "raw/energy-charts/DE-LU/2026-06-01/120000.json");
        }
        // A later run calls again.
        src.fetch(&nodes[0], now() + chrono::Duration::hours(1))
            .await
            .unwrap();
        assert_eq!(server.hits(scripted_path(p)), expected + 1, "{p:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nws_sends_a_user_agent_and_reuses_the_grid_point() {
    let base = Arc::new(Mutex::new(String::new()));
    let b = base.clone();
    let server = FakeServer::start(move |target, _| {
        nws_support(&b.lock().unwrap(), target).unwrap_or_else(|| {
            if target.starts_with("/gridpoints/") {
                body(Provider::Nws, Body::Good)
            } else {
                Reply::json(404, "{}")
            }
        })
    });
    *base.lock().unwrap() = server.base.clone();
    let (src, _) = source(Provider::Nws, &server.base, config(), None);
    let n = node(Provider::Nws, "n1", 39.04, -77.49);
    src.fetch(&n, now()).await.unwrap();
    src.fetch(&n, now() + chrono::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(
        server.hits("/points/"),
        1,
        "the grid point is looked up once"
    );
    assert_eq!(server.hits("/gridpoints/"), 2);
    let heads = server.requests();
    assert!(heads.iter().all(|h| h
        .to_ascii_lowercase()
        .contains("user-agent: grd-tests (ops@example.com)")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_and_a_failing_source_do_not_hold_up_the_rest() {
    let fast = FakeServer::start(|_, _| body(Provider::OpenMeteo, Body::Good));
    let slow = FakeServer::start(|_, _| {
        body(Provider::EnergyCharts, Body::Good).delayed(Duration::from_secs(20))
    });
    let failing = FakeServer::start(|_, _| Reply::json(503, "down for maintenance"));
    let http = HttpConfig {
        timeout: Duration::from_millis(800),
        retries: 1,
        ..config()
    };
    let (weather, _) = source(Provider::OpenMeteo, &fast.base, http.clone(), None);
    let (slow_prices, _) = source(Provider::EnergyCharts, &slow.base, http.clone(), None);
    let (failing_prices, _) = source(Provider::Nyiso, &failing.base, http, None);
    let mut nodes = Vec::new();
    for i in 0..6 {
        let price = if i % 2 == 0 {
            Provider::EnergyCharts
        } else {
            Provider::Nyiso
        };
        let mut n = node(price, &format!("n{i}"), 40.0 + i as f64, -75.0);
        n.sources.weather = Some(WeatherProvider::OpenMeteo);
        nodes.push(n);
    }
    let store = SqliteStore::in_memory().unwrap();
    for n in &nodes {
        store.put_node(n).await.unwrap();
    }
    let started = Instant::now();
    let report = fetch_signals(
        &store,
        &[weather, slow_prices, failing_prices],
        &nodes,
        now(),
        FetchLimits {
            concurrency: 16,
            timeout: Duration::from_secs(10),
        },
        None,
    )
    .await
    .unwrap();
    let took = started.elapsed();
    let om = &report.sources["open-meteo"];
    assert_eq!(
        (om.failed, om.accepted),
        (0, 6),
        "every node got its weather"
    );
    assert_eq!(om.forecast_points, 18);
    let ec = &report.sources["energy-charts"];
    assert_eq!(ec.failed, 3);
    assert!(
        ec.errors.iter().all(|e| e.contains("timed out")),
        "{:?}",
        ec.errors
    );
    let ny = &report.sources["nyiso-day-ahead"];
    assert_eq!(ny.failed, 3);
    assert!(
        ny.errors.iter().all(|e| e.contains("HTTP 503")),
        "{:?}",
        ny.errors
    );
    assert_eq!(report.changed_nodes.len(), 6);
    // Two timed-out attempts of 0.8 s and a short backoff, not the slow server's 20 s.
    assert!(took < Duration::from_secs(6), "took {took:?}");
}

/// The parsers on the recorded real responses, when their directory is given:
/// `GRD_API_FIXTURES=/path/to/api-fixtures cargo test -p grd-tests --test sources`.
#[test]
fn recorded_api_responses_when_given() {
    use grd::adapters::sources::{nws, nyiso, open_meteo, ParseError};
    let Ok(dir) = std::env::var("GRD_API_FIXTURES") else {
        eprintln!("GRD_API_FIXTURES not set: recorded responses not checked");
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let read = |p: &str| std::fs::read(dir.join(p)).unwrap();
    let issued = Utc.with_ymd_and_hms(2026, 10, 3, 10, 0, 0).unwrap();

    let p =
        open_meteo::parse(&read("open_meteo/forecast_trimmed.json"), "n", "om", issued).unwrap();
    assert!(p.rejected.is_empty());
    assert_eq!(
        p.observations[0].source_ts,
        Utc.with_ymd_and_hms(2026, 10, 3, 10, 30, 0).unwrap(),
        "12:30 at UTC+2"
    );
    assert_eq!(
        p.observations[0].reading,
        Reading::Weather {
            temp_c: 17.7,
            rh_pct: Some(66.0)
        }
    );
    assert_eq!(p.forecasts[0].points.len(), 3);
    let e = open_meteo::parse(&read("open_meteo/error_400.json"), "n", "om", issued).unwrap_err();
    assert!(
        matches!(e, ParseError::Api(ref r) if r.contains("tempeture_2m")),
        "{e}"
    );

    let point = nws::parse_point(&read("nws/points.json")).unwrap();
    assert_eq!(
        (point.grid_id.as_str(), point.grid_x, point.grid_y),
        ("TAE", 58, 65)
    );
    let p = nws::parse_forecast_hourly(&read("nws/gridpoints_forecast_hourly_us.json"), "n", "nws")
        .unwrap();
    assert!(p.rejected.is_empty());
    let f = &p.forecasts[0];
    assert_eq!(f.points.len(), 2);
    assert_eq!(
        f.issued_at,
        Utc.with_ymd_and_hms(2019, 10, 14, 23, 16, 24).unwrap()
    );
    assert!(
        matches!(f.points[0].1, Reading::Weather { temp_c, .. } if (temp_c - 25.56).abs() < 0.01)
    );
    let p = nws::parse_observations(&read("nws/stations_observations_latest.json"), "n", "nws")
        .unwrap();
    assert!(matches!(p.observations[0].reading,
        Reading::Weather { temp_c, rh_pct: Some(rh) } if (temp_c - 22.8).abs() < 1e-9 && (rh - 75.77).abs() < 0.01));
    let p = nws::parse_observations(
        &read("nws/stations_observations_missing_value.json"),
        "n",
        "nws",
    )
    .unwrap();
    assert!(p.observations.is_empty());
    assert_eq!(p.rejected.len(), 1);
    assert_eq!(p.rejected[0].defect.reason(), "missing_field");

    let later = Utc.with_ymd_and_hms(2016, 2, 19, 0, 0, 0).unwrap();
    let p = nyiso::parse(
        &read("nyiso/pyiso_nyiso_lmp_2016-02-18.csv"),
        "N.Y.C.",
        "n",
        "ny",
        later,
    )
    .unwrap();
    assert!(p.rejected.is_empty());
    assert_eq!(p.observations.len(), 3);
    assert_eq!(
        p.observations[0].source_ts,
        Utc.with_ymd_and_hms(2016, 2, 18, 5, 15, 0).unwrap(),
        "00:15 EST"
    );
    assert_eq!(
        p.observations[0].reading,
        Reading::Price { usd_per_mwh: 21.85 }
    );
    let e = nyiso::parse(
        &read("nyiso/pyiso_nyiso_lmp_2016-02-18.csv"),
        "ATLANTIS",
        "n",
        "ny",
        later,
    )
    .unwrap_err();
    assert!(e.to_string().contains("CAPITL"), "{e}");

    let text = String::from_utf8(read("original_repo/weather_dat_bad_cases.dat")).unwrap();
    let (rows, bad) = grd::adapters::station_log::parse(&text).unwrap();
    assert_eq!(rows.len() + bad.len(), text.lines().count() - 1);
    assert!(bad
        .iter()
        .all(|b| ["out_of_range", "non_finite"].contains(&b.why.reason())));
}
