//! The fetch functions with `GRD_SIGNAL_SOURCE=live`: the handler, its real HTTP sources
//! (pointed at a local fake server answering in the providers' formats) and DynamoDB/S3 on
//! the local AWS endpoint. Nodes sharing a grid cell or a price zone cost one upstream call
//! and one archived payload; a node naming no source gets nothing; a provider failing costs
//! only its own nodes.

#![cfg(feature = "aws-endpoint")]
#![allow(clippy::unwrap_used)]

#[path = "../fixtures/sources/fake_server.rs"]
mod fake_server;

use chrono::{DateTime, TimeZone, Utc};
use fake_server::{FakeServer, Reply};
use grd::adapters::dynamodb::DynamoStore;
use grd::adapters::s3::S3Archive;
use grd::adapters::sources::http::SourcesConfig;
use grd::domain::node::{default_fleet, Node, NodeSources, PriceProvider, WeatherProvider};
use grd::domain::signal::SignalKind;
use grd::domain::time::Hour;
use grd::lambda::config::{FetchConfig, SourceChoice};
use grd::lambda::fetch;
use grd::ports::{NodeStore, SignalStore};
use grd_tests::aws::{create_tables, sdk, unique};
use std::time::{Duration, Instant};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

fn ts(h: u32) -> i64 {
    Utc.with_ymd_and_hms(2026, 6, 1, h, 0, 0)
        .unwrap()
        .timestamp()
}

const OPEN_METEO: &str = r#"{"latitude":50.1,"longitude":8.7,"utc_offset_seconds":0,
  "current_units":{"temperature_2m":"°C"},
  "current":{"time":"2026-06-01T12:00","interval":900,"temperature_2m":20.4,"relative_humidity_2m":55,"dew_point_2m":11.0},
  "hourly_units":{"temperature_2m":"°C"},
  "hourly":{"time":["2026-06-01T12:00","2026-06-01T13:00","2026-06-01T14:00"],"temperature_2m":[20.5,21.0,22.5],
    "relative_humidity_2m":[55,50,45],"dew_point_2m":[11.0,10.4,10.0]}}"#;

fn node(id: &str, lat: f64, lon: f64, sources: NodeSources) -> Node {
    let mut n = default_fleet(1).remove(0);
    n.id = id.into();
    n.lat = lat;
    n.lon = lon;
    n.market = "entsoe:DE-LU".into();
    n.sources = sources;
    n
}

async fn objects(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<String> {
    s3.list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn live_sources_store_signals_and_archive_one_payload_per_cell_or_zone() {
    let server = FakeServer::start(|target, _| {
        if target.starts_with("/v1/forecast") {
            Reply::json(200, OPEN_METEO)
        } else if target.starts_with("/price") {
            Reply::json(
                200,
                format!(
                    r#"{{"unix_seconds":[{},{},{},{}],"price":[80.5,95.25,-3.0,110.0],"unit":"EUR / MWh"}}"#,
                    ts(11),
                    ts(12),
                    ts(13),
                    ts(14)
                ),
            )
        } else {
            Reply::json(500, r#"{"detail":"down"}"#)
        }
    });
    let conf = sdk().await;
    let tables = create_tables(&aws_sdk_dynamodb::Client::new(&conf)).await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&conf), tables);
    let s3 = grd::aws::s3_client(&conf);
    let bucket = unique("raw");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let both = NodeSources {
        weather: Some(WeatherProvider::OpenMeteo),
        prices: Some(PriceProvider::EnergyCharts),
        ..NodeSources::default()
    };
    // Two nodes in one Open-Meteo grid cell and one price zone; one naming NWS, whose
    // server fails; one naming nothing.
    let nodes = [
        node("fra1", 50.11, 8.68, both.clone()),
        node("fra2", 50.112, 8.681, both),
        node(
            "iad1",
            39.04,
            -77.49,
            NodeSources {
                weather: Some(WeatherProvider::Nws),
                ..NodeSources::default()
            },
        ),
        node("bare", 45.0, 7.0, NodeSources::default()),
    ];
    for n in &nodes {
        store.put_node(n).await.unwrap();
    }
    let config = FetchConfig {
        nodes_table: String::new(),
        signals_table: String::new(),
        raw_bucket: bucket.clone(),
        horizon: 48,
        source: SourceChoice::Live,
        live: SourcesConfig::from_env(|k| match k {
            "GRD_SOURCES_BASE_URL"
            | "GRD_OPEN_METEO_URL"
            | "GRD_NWS_URL"
            | "GRD_ENERGY_CHARTS_URL" => Some(server.base.clone()),
            "GRD_HTTP_TIMEOUT_MS" => Some("1000".into()),
            "GRD_HTTP_RETRIES" => Some("1".into()),
            _ => None,
        })
        .unwrap(),
        open_meteo_key_parameter: None,
    };
    let archive = S3Archive::new(s3.clone(), bucket.clone());
    let later = Instant::now() + Duration::from_secs(30);

    let weather = fetch::sources(&config, SignalKind::Weather, &s3).unwrap();
    let report = fetch::handle(&store, &archive, &weather, now(), later)
        .await
        .unwrap();
    let om = &report.sources["open-meteo"];
    assert_eq!((om.failed, om.accepted), (0, 2), "{report:?}");
    let nws = &report.sources["nws"];
    assert_eq!(nws.failed, 1, "only the NWS node fails: {report:?}");
    assert_eq!(
        server.hits("/v1/forecast"),
        1,
        "one call for the shared cell"
    );
    assert_eq!(objects(&s3, &bucket, "raw/open-meteo/").await.len(), 1);

    let prices = fetch::sources(&config, SignalKind::Price, &s3).unwrap();
    let report = fetch::handle(&store, &archive, &prices, now(), later)
        .await
        .unwrap();
    let ec = &report.sources["energy-charts"];
    assert_eq!(ec.failed, 0, "{report:?}");
    assert_eq!(server.hits("/price"), 1, "one call for the shared zone");
    let archived = objects(&s3, &bucket, "raw/energy-charts/").await;
    assert_eq!(archived.len(), 1, "{archived:?}");
    assert!(archived[0].starts_with("raw/energy-charts/DE-LU/2026-06-01/"));

    let h = Hour::containing(now());
    for id in ["fra1", "fra2"] {
        let s = store.node_signals(id, h, h.plus(3)).await.unwrap();
        assert!(s.weather.is_some() && s.price.is_some(), "{id}: {s:?}");
    }
    for id in ["iad1", "bare"] {
        let s = store.node_signals(id, h, h.plus(3)).await.unwrap();
        assert!(s.weather.is_none() && s.price.is_none(), "{id}: {s:?}");
    }
}
