//! The HTTP side of the real sources: one small client (timeouts, retries with jittered
//! exponential backoff that honour 429 + Retry-After, a bound on requests in flight over all
//! nodes), calls shared by nodes that need the same document (one price zone, one weather
//! grid cell), and the [`SignalSource`] implementations.
//!
//! Raw payloads are archived before they are parsed: through the source's own
//! [`RawArchive`] under `raw/{source}/{zone or cell}/{date}/{time}.{ext}` when one is given
//! (once per upstream call), else in [`Fetched::raw`] of the first node that asked for it.

use super::{energy_charts, nws, nyiso, open_meteo, ParseError, Parsed, MAX_BODY_BYTES};
use crate::app::fetch_signals::raw_key;
use crate::domain::node::{Node, PriceProvider, WeatherProvider};
use crate::domain::signal::SignalKind;
use crate::domain::time::Hour;
use crate::ports::{Fetched, RawArchive, RawPayload, SignalSource, SourceError};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use futures::future::BoxFuture;
use futures::FutureExt;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OnceCell, Semaphore};

/// How the client behaves; every bound is explicit.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    /// Per attempt, body included.
    pub timeout: Duration,
    /// Attempts after the first, for timeouts, connection errors, 429 and 5xx.
    pub retries: u32,
    /// First backoff; it doubles per attempt, with jitter (50-100 % of the step).
    pub backoff_base: Duration,
    /// Longest wait between attempts, Retry-After included.
    pub max_backoff: Duration,
    /// Requests in flight at once over all sources sharing this client.
    pub max_in_flight: usize,
    /// Sent with every request (NWS refuses requests without one).
    pub user_agent: String,
    pub max_body_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            timeout: Duration::from_secs(10),
            retries: 2,
            backoff_base: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_in_flight: 8,
            user_agent: format!(
                "grd/{} (geographic resource dispatch)",
                env!("CARGO_PKG_VERSION")
            ),
            max_body_bytes: MAX_BODY_BYTES,
        }
    }
}

/// A response as it arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    fn snippet(&self) -> String {
        let s = String::from_utf8_lossy(&self.bytes);
        let s = s.trim();
        let cut = (0..=s.len().min(160))
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0);
        s[..cut].to_string()
    }
}

/// Why one attempt failed, and whether another may succeed.
enum Attempt {
    Done(Response),
    Retry {
        error: SourceError,
        after: Option<Duration>,
    },
}

pub struct HttpClient {
    client: reqwest::Client,
    config: HttpConfig,
    permits: Arc<Semaphore>,
    jitter: AtomicU64,
    attempts: AtomicU64,
}

/// The error text with its causes, e.g. `error sending request: dns error: ...`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let c_s = c.to_string();
        if !s.contains(&c_s) {
            s.push_str(": ");
            s.push_str(&c_s);
        }
        cur = c.source();
    }
    s
}

/// Why a connection failed, in a few words: the DNS or socket error at the root of the chain.
fn connect_cause(e: &dyn std::error::Error) -> String {
    let mut causes = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        causes.push(c.to_string());
        cur = c.source();
    }
    match causes.iter().position(|c| c.starts_with("dns error")) {
        Some(i) => causes[i..].join(": "),
        None => causes.last().cloned().unwrap_or_default(),
    }
}

/// The host of a URL, for messages.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

/// Retry-After as seconds or an HTTP date, relative to `now`.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

impl HttpClient {
    pub fn new(config: HttpConfig) -> Result<HttpClient, String> {
        // The ring provider: the one seen to cross-build for the arm64 Lambda. Installing it
        // twice is harmless (the second call reports the first).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .connect_timeout(config.timeout)
            .timeout(config.timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {}", chain(&e)))?;
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        Ok(HttpClient {
            client,
            permits: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            config,
            jitter: AtomicU64::new(seed | 1),
            attempts: AtomicU64::new(0),
        })
    }

    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// HTTP requests sent so far (retries included).
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
    }

    /// A uniform draw in [0.5, 1) for jitter (xorshift; quality does not matter here).
    fn jitter(&self) -> f64 {
        let mut x = self.jitter.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.jitter.store(x, Ordering::Relaxed);
        0.5 + 0.5 * ((x >> 11) as f64 / (1u64 << 53) as f64)
    }

    /// Backoff before attempt `attempt + 1`.
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let cap = self.config.max_backoff;
        match retry_after {
            Some(d) => d.min(cap),
            None => {
                let step = self
                    .config
                    .backoff_base
                    .saturating_mul(1u32 << attempt.min(16));
                step.mul_f64(self.jitter()).min(cap)
            }
        }
    }

    async fn attempt(&self, source: &str, url: &str) -> Attempt {
        let _permit = self.permits.acquire().await;
        self.attempts.fetch_add(1, Ordering::Relaxed);
        let unavailable = |detail: String| SourceError::Unavailable {
            source_name: source.to_string(),
            detail,
        };
        let classify = |e: reqwest::Error| Attempt::Retry {
            error: if e.is_timeout() {
                SourceError::Timeout {
                    source_name: source.to_string(),
                }
            } else if e.is_connect() {
                unavailable(format!(
                    "cannot connect to {}: {}",
                    host_of(url),
                    connect_cause(&e)
                ))
            } else {
                unavailable(chain(&e))
            },
            after: None,
        };
        let mut resp = match self.client.get(url).send().await {
            Ok(r) => r,
            Err(e) => return classify(e),
        };
        let status = resp.status().as_u16();
        let header = |name: reqwest::header::HeaderName| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header(reqwest::header::CONTENT_TYPE).unwrap_or_default();
        let retry_after =
            header(reqwest::header::RETRY_AFTER).and_then(|v| parse_retry_after(&v, Utc::now()));
        let mut bytes = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > self.config.max_body_bytes {
                        return Attempt::Done(Response {
                            status: 0,
                            content_type,
                            bytes: format!("response over {} bytes", self.config.max_body_bytes)
                                .into_bytes(),
                        });
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => return classify(e),
                Err(e) => {
                    return Attempt::Retry {
                        error: unavailable(format!("body cut short: {}", chain(&e))),
                        after: None,
                    }
                }
            }
        }
        let response = Response {
            status,
            content_type,
            bytes,
        };
        if status == 429 || status >= 500 {
            Attempt::Retry {
                error: unavailable(format!("HTTP {status}: {}", response.snippet())),
                after: retry_after,
            }
        } else {
            Attempt::Done(response)
        }
    }

    /// GETs `url`, retrying what may succeed on a second try. Any final status comes back as
    /// a [`Response`]; only transport failures, 429 and 5xx after the last retry are errors.
    pub async fn get(&self, source: &str, url: &str) -> Result<Response, SourceError> {
        let mut attempt = 0;
        loop {
            match self.attempt(source, url).await {
                Attempt::Done(r) if r.status == 0 => {
                    return Err(SourceError::BadResponse {
                        source_name: source.to_string(),
                        detail: String::from_utf8_lossy(&r.bytes).into_owned(),
                    })
                }
                Attempt::Done(r) => return Ok(r),
                Attempt::Retry { error, after } => {
                    if attempt >= self.config.retries {
                        tracing::debug!(%source, %url, attempts = attempt + 1, error = %error, "giving up");
                        return Err(error);
                    }
                    let wait = self.backoff(attempt, after);
                    tracing::debug!(%source, %url, attempt, ?wait, error = %error, "retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        }
    }
}

/// One upstream call per key per run, however many nodes ask: the first caller makes it, the
/// others wait for its result. Keys of an earlier run are dropped when a new run starts.
#[derive(Default)]
pub struct SharedCalls {
    inner: Mutex<(Option<DateTime<Utc>>, Calls)>,
}

type CallCell = OnceCell<Result<Arc<Response>, SourceError>>;
type Calls = HashMap<String, Arc<CallCell>>;

impl SharedCalls {
    fn cell(&self, run: DateTime<Utc>, key: &str) -> Arc<CallCell> {
        let mut guard = match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let (current, map) = &mut *guard;
        if *current != Some(run) {
            map.clear();
            *current = Some(run);
        }
        map.entry(key.to_string()).or_default().clone()
    }

    /// The response for `key` in run `run`, and whether this caller made the call.
    pub async fn get<F>(
        &self,
        run: DateTime<Utc>,
        key: &str,
        call: F,
    ) -> (Result<Arc<Response>, SourceError>, bool)
    where
        F: std::future::Future<Output = Result<Response, SourceError>>,
    {
        let cell = self.cell(run, key);
        let mut led = false;
        let result = cell
            .get_or_init(|| {
                led = true;
                call.map(|r| r.map(Arc::new))
            })
            .await
            .clone();
        (result, led)
    }
}

/// The `SignalSource` of an HTTP source: its name, its kind and the nodes it serves (those
/// naming it in their `sources`); any other node gets nothing from it.
macro_rules! http_signal_source {
    ($ty:ty, $kind:expr, |$source:ident, $node:ident| $serves:expr) => {
        impl SignalSource for $ty {
            fn name(&self) -> &str {
                &self.common.name
            }
            fn kind(&self) -> SignalKind {
                $kind
            }
            fn fetch<'a>(
                &'a self,
                node: &'a Node,
                now: DateTime<Utc>,
            ) -> BoxFuture<'a, Result<Fetched, SourceError>> {
                async move {
                    let ($source, $node) = (self, node);
                    if !$serves {
                        return Ok(Fetched::default());
                    }
                    self.fetch_node(node, now).await
                }
                .boxed()
            }
        }
    };
}

/// What every HTTP source shares: the client, the de-duplication and the archive.
struct Common {
    name: String,
    http: Arc<HttpClient>,
    calls: SharedCalls,
    archive: Option<Arc<dyn RawArchive>>,
}

impl Common {
    fn new(name: &str, http: Arc<HttpClient>, archive: Option<Arc<dyn RawArchive>>) -> Common {
        Common {
            name: name.to_string(),
            http,
            calls: SharedCalls::default(),
            archive,
        }
    }

    fn bad(&self, detail: impl Into<String>) -> SourceError {
        SourceError::BadResponse {
            source_name: self.name.clone(),
            detail: detail.into(),
        }
    }

    /// GETs `url` once per run for `group` (zone or grid cell), archives the raw body before
    /// anything parses it, and returns it with the payload to hand on when this caller led.
    async fn fetch_raw(
        &self,
        group: &str,
        url: &str,
        now: DateTime<Utc>,
        extension: &str,
    ) -> Result<(Arc<Response>, Option<RawPayload>), SourceError> {
        let (result, led) = self
            .calls
            .get(now, url, async {
                let r = self.http.get(&self.name, url).await?;
                if let Some(archive) = &self.archive {
                    let payload = payload_of(&r, extension);
                    let key = raw_key(&self.name, &safe_key(group), now, extension);
                    if let Err(e) = archive.put(&key, &payload).await {
                        tracing::warn!(source = %self.name, %key, error = %e, "raw payload not archived");
                    }
                }
                Ok(r)
            })
            .await;
        let response = result?;
        let raw = (led && self.archive.is_none()).then(|| payload_of(&response, extension));
        Ok((response, raw))
    }

    /// A 2xx body, or the error a 4xx says (the provider's own reason when it gives one).
    fn ok_body<'r>(
        &self,
        r: &'r Response,
        what: &str,
        api_reason: impl Fn(&[u8]) -> Option<String>,
    ) -> Result<&'r [u8], SourceError> {
        if r.is_success() {
            return Ok(&r.bytes);
        }
        let reason = api_reason(&r.bytes).unwrap_or_else(|| r.snippet());
        let detail = if r.status == 404 {
            format!("{what} not found (HTTP 404): {reason}")
        } else {
            format!("{what}: HTTP {}: {reason}", r.status)
        };
        Err(self.bad(detail))
    }

    fn parsed(&self, r: Result<Parsed, ParseError>, what: &str) -> Result<Parsed, SourceError> {
        r.map_err(|e| self.bad(format!("{what}: {e}")))
    }
}

fn payload_of(r: &Response, extension: &str) -> RawPayload {
    RawPayload {
        content_type: r.content_type.clone(),
        extension: extension.to_string(),
        bytes: r.bytes.clone(),
    }
}

/// A zone or cell name safe in an archive key.
fn safe_key(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A weather grid cell: lat/lon rounded to `decimals`, so close nodes share one call.
pub fn grid_cell(lat: f64, lon: f64, decimals: i32) -> (f64, f64) {
    let f = 10f64.powi(decimals);
    ((lat * f).round() / f, (lon * f).round() / f)
}

fn fetched(parsed: Parsed, raw: Option<RawPayload>) -> Fetched {
    Fetched {
        observations: parsed.observations,
        forecasts: parsed.forecasts,
        malformed: parsed
            .rejected
            .iter()
            .map(|r| r.defect.to_rejection())
            .collect(),
        raw,
    }
}

fn api_reason_json(bytes: &[u8], key: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    v.get(key)?.as_str().map(str::to_string)
}

/// Keeps forecast points from `now`'s hour on (providers also send the earlier hours of
/// the day).
fn from_now_on(mut p: Parsed, now: DateTime<Utc>) -> Parsed {
    let hour = Hour::containing(now);
    for f in &mut p.forecasts {
        f.points.retain(|(h, _)| *h >= hour);
    }
    p.forecasts.retain(|f| !f.points.is_empty());
    p
}

/// Open-Meteo forecast API: current conditions and a 3-day hourly forecast per grid cell.
pub struct OpenMeteoSource {
    common: Common,
    base_url: String,
    api_key: Option<String>,
}

impl OpenMeteoSource {
    pub const NAME: &'static str = "open-meteo";

    /// `base_url`: `https://api.open-meteo.com`, or the commercial
    /// `https://customer-api.open-meteo.com` with an API key.
    pub fn new(
        http: Arc<HttpClient>,
        base_url: &str,
        api_key: Option<String>,
        archive: Option<Arc<dyn RawArchive>>,
    ) -> OpenMeteoSource {
        OpenMeteoSource {
            common: Common::new(Self::NAME, http, archive),
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key,
        }
    }

    async fn fetch_node(&self, node: &Node, now: DateTime<Utc>) -> Result<Fetched, SourceError> {
        let (lat, lon) = grid_cell(node.lat, node.lon, 2);
        let mut url = format!(
            "{}/v1/forecast?{}",
            self.base_url,
            open_meteo::query(lat, lon, 3)
        );
        if let Some(key) = &self.api_key {
            url.push_str("&apikey=");
            url.push_str(key);
        }
        let cell = format!("{lat:.2}_{lon:.2}");
        let (r, raw) = self.common.fetch_raw(&cell, &url, now, "json").await?;
        let body = self
            .common
            .ok_body(&r, &format!("forecast for {cell}"), |b| {
                api_reason_json(b, "reason")
            })?;
        let issued = Hour::containing(now).start();
        let parsed = self.common.parsed(
            open_meteo::parse(body, &node.id, Self::NAME, issued),
            "forecast",
        )?;
        Ok(fetched(from_now_on(parsed, now), raw))
    }
}

http_signal_source!(OpenMeteoSource, SignalKind::Weather, |_s, node| {
    node.sources.weather == Some(WeatherProvider::OpenMeteo)
});

/// NWS (US only): points -> hourly forecast, and the nearest station's latest observation.
pub struct NwsSource {
    common: Common,
    base_url: String,
    /// Grid cell -> (point, first station), which do not change between runs.
    points: Mutex<HashMap<String, (nws::Point, Option<String>)>>,
}

impl NwsSource {
    pub const NAME: &'static str = "nws";

    pub fn new(
        http: Arc<HttpClient>,
        base_url: &str,
        archive: Option<Arc<dyn RawArchive>>,
    ) -> NwsSource {
        NwsSource {
            common: Common::new(Self::NAME, http, archive),
            base_url: base_url.trim_end_matches('/').to_string(),
            points: Mutex::new(HashMap::new()),
        }
    }

    fn cached_point(&self, cell: &str) -> Option<(nws::Point, Option<String>)> {
        self.points.lock().ok()?.get(cell).cloned()
    }

    async fn point(
        &self,
        cell: &str,
        lat: f64,
        lon: f64,
        now: DateTime<Utc>,
    ) -> Result<(nws::Point, Option<String>), SourceError> {
        if let Some(p) = self.cached_point(cell) {
            return Ok(p);
        }
        let url = format!("{}/points/{lat},{lon}", self.base_url);
        let (r, _) = self.common.fetch_raw(cell, &url, now, "json").await?;
        let body = self
            .common
            .ok_body(&r, &format!("point {lat},{lon}"), |b| {
                api_reason_json(b, "detail")
            })?;
        let point = nws::parse_point(body).map_err(|e| self.common.bad(format!("points: {e}")))?;
        let station = match &point.observation_stations {
            None => None,
            Some(url) => {
                let (r, _) = self.common.fetch_raw(cell, url, now, "json").await?;
                let body = self
                    .common
                    .ok_body(&r, "stations", |b| api_reason_json(b, "detail"))?;
                nws::parse_stations(body)
                    .map_err(|e| self.common.bad(format!("stations: {e}")))?
                    .into_iter()
                    .next()
            }
        };
        if let Ok(mut m) = self.points.lock() {
            m.insert(cell.to_string(), (point.clone(), station.clone()));
        }
        Ok((point, station))
    }

    async fn fetch_node(&self, node: &Node, now: DateTime<Utc>) -> Result<Fetched, SourceError> {
        let (lat, lon) = grid_cell(node.lat, node.lon, 4);
        let cell = format!("{lat:.4}_{lon:.4}");
        let (point, nearest) = self.point(&cell, lat, lon, now).await?;
        let grid = format!("{}_{}_{}", point.grid_id, point.grid_x, point.grid_y);
        let (r, raw) = self
            .common
            .fetch_raw(&grid, &point.forecast_hourly, now, "json")
            .await?;
        let body = self
            .common
            .ok_body(&r, "hourly forecast", |b| api_reason_json(b, "detail"))?;
        let mut parsed = self.common.parsed(
            nws::parse_forecast_hourly(body, &node.id, Self::NAME),
            "hourly forecast",
        )?;
        if let Some(station) = node.sources.station.clone().or(nearest) {
            let url = format!(
                "{}/stations/{}/observations/latest",
                self.base_url,
                safe_key(&station)
            );
            let (r, _) = self.common.fetch_raw(&station, &url, now, "json").await?;
            let body = self
                .common
                .ok_body(&r, &format!("station {station}"), |b| {
                    api_reason_json(b, "detail")
                })?;
            let obs = self.common.parsed(
                nws::parse_observations(body, &node.id, Self::NAME),
                "observation",
            )?;
            parsed.observations.extend(obs.observations);
            parsed.rejected.extend(obs.rejected);
        }
        Ok(fetched(from_now_on(parsed, now), raw))
    }
}

http_signal_source!(NwsSource, SignalKind::Weather, |_s, node| {
    node.sources.weather == Some(WeatherProvider::Nws)
});

/// Energy-Charts day-ahead prices per bidding zone (EUR/MWh, converted to USD).
pub struct EnergyChartsSource {
    common: Common,
    base_url: String,
    eur_usd: f64,
}

impl EnergyChartsSource {
    pub const NAME: &'static str = "energy-charts";

    pub fn new(
        http: Arc<HttpClient>,
        base_url: &str,
        eur_usd: f64,
        archive: Option<Arc<dyn RawArchive>>,
    ) -> EnergyChartsSource {
        EnergyChartsSource {
            common: Common::new(Self::NAME, http, archive),
            base_url: base_url.trim_end_matches('/').to_string(),
            eur_usd,
        }
    }

    async fn fetch_node(&self, node: &Node, now: DateTime<Utc>) -> Result<Fetched, SourceError> {
        let zone = node.price_zone();
        let start = Hour::containing(now).start() - ChronoDuration::hours(1);
        let url = format!(
            "{}/price?{}",
            self.base_url,
            energy_charts::query(&zone, start, start + ChronoDuration::hours(48))
        );
        let (r, raw) = self.common.fetch_raw(&zone, &url, now, "json").await?;
        let body = self.common.ok_body(&r, &format!("zone {zone}"), |b| {
            api_reason_json(b, "detail")
        })?;
        let parsed = self.common.parsed(
            energy_charts::parse(body, &node.id, Self::NAME, self.eur_usd, now),
            &format!("zone {zone}"),
        )?;
        Ok(fetched(parsed, raw))
    }
}

http_signal_source!(EnergyChartsSource, SignalKind::Price, |_s, node| {
    node.sources.prices == Some(PriceProvider::EnergyCharts)
});

/// NYISO zonal LBMP from the public MIS CSV files, day-ahead or real-time.
pub struct NyisoSource {
    common: Common,
    base_url: String,
    market: nyiso::Market,
}

impl NyisoSource {
    pub const DAY_AHEAD: &'static str = "nyiso-day-ahead";
    pub const REAL_TIME: &'static str = "nyiso-real-time";

    pub fn new(
        http: Arc<HttpClient>,
        base_url: &str,
        market: nyiso::Market,
        archive: Option<Arc<dyn RawArchive>>,
    ) -> NyisoSource {
        let name = match market {
            nyiso::Market::DayAhead => Self::DAY_AHEAD,
            nyiso::Market::RealTime => Self::REAL_TIME,
        };
        NyisoSource {
            common: Common::new(name, http, archive),
            base_url: base_url.trim_end_matches('/').to_string(),
            market,
        }
    }

    async fn fetch_node(&self, node: &Node, now: DateTime<Utc>) -> Result<Fetched, SourceError> {
        let zone = node.price_zone();
        let local = now.naive_utc();
        let day = (local + ChronoDuration::hours(nyiso::new_york_offset_hours(local))).date();
        let url = format!("{}{}", self.base_url, self.market.path(day));
        let (r, raw) = self.common.fetch_raw(&zone, &url, now, "csv").await?;
        let body = self
            .common
            .ok_body(&r, &format!("file for {day}"), |_| None)?;
        let parsed = self.common.parsed(
            nyiso::parse(body, &zone, &node.id, &self.common.name, now),
            &format!("zone {zone}"),
        )?;
        Ok(fetched(parsed, raw))
    }
}

http_signal_source!(NyisoSource, SignalKind::Price, |source, node| {
    node.sources.prices
        == Some(match source.market {
            nyiso::Market::DayAhead => PriceProvider::NyisoDayAhead,
            nyiso::Market::RealTime => PriceProvider::NyisoRealTime,
        })
});

/// Where the real sources are and how to call them; read once from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct SourcesConfig {
    pub open_meteo_url: String,
    pub open_meteo_api_key: Option<String>,
    pub nws_url: String,
    pub energy_charts_url: String,
    pub nyiso_url: String,
    pub eur_usd: f64,
    pub http: HttpConfig,
}

impl Default for SourcesConfig {
    fn default() -> Self {
        SourcesConfig {
            open_meteo_url: "https://api.open-meteo.com".into(),
            open_meteo_api_key: None,
            nws_url: "https://api.weather.gov".into(),
            energy_charts_url: "https://api.energy-charts.info".into(),
            nyiso_url: "https://mis.nyiso.com".into(),
            eur_usd: 1.08,
            http: HttpConfig::default(),
        }
    }
}

impl SourcesConfig {
    /// The variables read by [`SourcesConfig::from_env`], with what each sets.
    pub const VARIABLES: [(&'static str, &'static str); 10] = [
        (
            "GRD_OPEN_METEO_URL",
            "Open-Meteo base URL (commercial: https://customer-api.open-meteo.com)",
        ),
        (
            "GRD_OPEN_METEO_API_KEY",
            "Open-Meteo API key (commercial host)",
        ),
        ("GRD_NWS_URL", "NWS API base URL"),
        ("GRD_ENERGY_CHARTS_URL", "Energy-Charts API base URL"),
        ("GRD_NYISO_URL", "NYISO MIS base URL"),
        ("GRD_EUR_USD", "USD per EUR for EUR/MWh prices"),
        (
            "GRD_HTTP_USER_AGENT",
            "User-Agent (NWS asks for a contact in it)",
        ),
        ("GRD_HTTP_TIMEOUT_MS", "per-request timeout"),
        ("GRD_HTTP_RETRIES", "retries after the first attempt"),
        (
            "GRD_HTTP_MAX_IN_FLIGHT",
            "requests in flight over all nodes",
        ),
    ];

    /// Reads the variables through `var` (the environment, or a map in tests); a malformed
    /// value is an error naming the variable.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<SourcesConfig, String> {
        let mut c = SourcesConfig::default();
        let text = |name: &str, into: &mut String| {
            if let Some(v) = var(name).filter(|v| !v.trim().is_empty()) {
                *into = v.trim().to_string();
            }
        };
        text("GRD_OPEN_METEO_URL", &mut c.open_meteo_url);
        text("GRD_NWS_URL", &mut c.nws_url);
        text("GRD_ENERGY_CHARTS_URL", &mut c.energy_charts_url);
        text("GRD_NYISO_URL", &mut c.nyiso_url);
        text("GRD_HTTP_USER_AGENT", &mut c.http.user_agent);
        c.open_meteo_api_key = var("GRD_OPEN_METEO_API_KEY").filter(|v| !v.trim().is_empty());
        fn num<T: std::str::FromStr>(
            var: &impl Fn(&str) -> Option<String>,
            name: &str,
            ok: impl Fn(&T) -> bool,
            what: &str,
        ) -> Result<Option<T>, String> {
            match var(name) {
                None => Ok(None),
                Some(v) => match v.trim().parse::<T>() {
                    Ok(x) if ok(&x) => Ok(Some(x)),
                    _ => Err(format!("{name}={v:?}: must be {what}")),
                },
            }
        }
        if let Some(x) = num(
            &var,
            "GRD_EUR_USD",
            |x: &f64| x.is_finite() && *x > 0.0,
            "a positive number",
        )? {
            c.eur_usd = x;
        }
        if let Some(x) = num(
            &var,
            "GRD_HTTP_TIMEOUT_MS",
            |x: &u64| (1..=600_000).contains(x),
            "1..600000 ms",
        )? {
            c.http.timeout = Duration::from_millis(x);
        }
        if let Some(x) = num(&var, "GRD_HTTP_RETRIES", |x: &u32| *x <= 10, "0..10")? {
            c.http.retries = x;
        }
        if let Some(x) = num(
            &var,
            "GRD_HTTP_MAX_IN_FLIGHT",
            |x: &usize| (1..=256).contains(x),
            "1..256",
        )? {
            c.http.max_in_flight = x;
        }
        Ok(c)
    }

    /// The client these settings describe, to share between sources.
    pub fn client(&self) -> Result<Arc<HttpClient>, String> {
        HttpClient::new(self.http.clone()).map(Arc::new)
    }

    /// The sources the given nodes name (one of each used), all on one client.
    pub fn sources_for(
        &self,
        http: &Arc<HttpClient>,
        nodes: &[Node],
        archive: Option<Arc<dyn RawArchive>>,
    ) -> Vec<Arc<dyn SignalSource>> {
        self.build(
            http,
            |w| nodes.iter().any(|n| n.sources.weather == Some(w)),
            |p| nodes.iter().any(|n| n.sources.prices == Some(p)),
            archive,
        )
    }

    fn build(
        &self,
        http: &Arc<HttpClient>,
        weather: impl Fn(WeatherProvider) -> bool,
        prices: impl Fn(PriceProvider) -> bool,
        archive: Option<Arc<dyn RawArchive>>,
    ) -> Vec<Arc<dyn SignalSource>> {
        let mut out: Vec<Arc<dyn SignalSource>> = Vec::new();
        if weather(WeatherProvider::OpenMeteo) {
            out.push(Arc::new(OpenMeteoSource::new(
                http.clone(),
                &self.open_meteo_url,
                self.open_meteo_api_key.clone(),
                archive.clone(),
            )));
        }
        if weather(WeatherProvider::Nws) {
            out.push(Arc::new(NwsSource::new(
                http.clone(),
                &self.nws_url,
                archive.clone(),
            )));
        }
        if prices(PriceProvider::EnergyCharts) {
            out.push(Arc::new(EnergyChartsSource::new(
                http.clone(),
                &self.energy_charts_url,
                self.eur_usd,
                archive.clone(),
            )));
        }
        for (p, m) in [
            (PriceProvider::NyisoDayAhead, nyiso::Market::DayAhead),
            (PriceProvider::NyisoRealTime, nyiso::Market::RealTime),
        ] {
            if prices(p) {
                out.push(Arc::new(NyisoSource::new(
                    http.clone(),
                    &self.nyiso_url,
                    m,
                    archive.clone(),
                )));
            }
        }
        out
    }

    /// Every source of one kind, whichever nodes name them (each serves only the nodes that
    /// name it and returns nothing for the others), all on one client.
    pub fn sources_of_kind(
        &self,
        http: &Arc<HttpClient>,
        kind: SignalKind,
        archive: Option<Arc<dyn RawArchive>>,
    ) -> Vec<Arc<dyn SignalSource>> {
        self.build(
            http,
            |_| kind == SignalKind::Weather,
            |_| kind == SignalKind::Price,
            archive,
        )
    }

    /// Whether a node names this source for its weather or its prices.
    pub fn serves(source: &dyn SignalSource, node: &Node) -> bool {
        let weather = node.sources.weather.map(|w| match w {
            WeatherProvider::OpenMeteo => OpenMeteoSource::NAME,
            WeatherProvider::Nws => NwsSource::NAME,
        });
        let prices = node.sources.prices.map(|p| match p {
            PriceProvider::EnergyCharts => EnergyChartsSource::NAME,
            PriceProvider::NyisoDayAhead => NyisoSource::DAY_AHEAD,
            PriceProvider::NyisoRealTime => NyisoSource::REAL_TIME,
        });
        let name = Some(source.name());
        name == weather || name == prices
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::collections::HashMap;

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Mon, 01 Jun 2026 12:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Mon, 01 Jun 2026 11:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let c = HttpClient::new(HttpConfig {
            backoff_base: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            ..HttpConfig::default()
        })
        .unwrap();
        for attempt in 0..3u32 {
            let step = 100u64 << attempt;
            let d = c.backoff(attempt, None).as_millis() as u64;
            assert!(d >= step / 2 && d <= step, "attempt {attempt}: {d} ms");
        }
        assert_eq!(c.backoff(10, None), Duration::from_secs(1));
        assert_eq!(
            c.backoff(0, Some(Duration::from_secs(3600))),
            Duration::from_secs(1),
            "Retry-After is capped"
        );
        assert_eq!(
            c.backoff(0, Some(Duration::from_millis(250))),
            Duration::from_millis(250)
        );
    }

    #[test]
    fn grid_cells_group_close_nodes() {
        assert_eq!(
            grid_cell(39.0412, -77.4874, 2),
            grid_cell(39.0399, -77.4901, 2)
        );
        assert_ne!(grid_cell(39.04, -77.49, 2), grid_cell(39.06, -77.49, 2));
        assert_eq!(safe_key("N.Y.C."), "N.Y.C.");
        assert_eq!(safe_key("H Q/x"), "H_Q_x");
        assert_eq!(
            host_of("https://api.weather.gov/points/1,2"),
            "api.weather.gov"
        );
        assert_eq!(host_of("http://127.0.0.1:1?x=1"), "127.0.0.1:1");
    }

    #[test]
    fn config_from_variables_names_bad_values() {
        let vars: HashMap<&str, &str> = [
            ("GRD_NWS_URL", "http://127.0.0.1:9"),
            ("GRD_EUR_USD", "1.2"),
            ("GRD_HTTP_RETRIES", "0"),
        ]
        .into();
        let c = SourcesConfig::from_env(|k| vars.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(c.nws_url, "http://127.0.0.1:9");
        assert_eq!(c.eur_usd, 1.2);
        assert_eq!(c.http.retries, 0);
        assert_eq!(c.open_meteo_url, "https://api.open-meteo.com");
        let e = SourcesConfig::from_env(|k| (k == "GRD_EUR_USD").then(|| "-1".to_string()))
            .unwrap_err();
        assert!(e.contains("GRD_EUR_USD"), "{e}");
        let e = SourcesConfig::from_env(|k| (k == "GRD_HTTP_TIMEOUT_MS").then(|| "x".to_string()))
            .unwrap_err();
        assert!(e.contains("GRD_HTTP_TIMEOUT_MS"), "{e}");
    }

    #[tokio::test]
    async fn one_call_per_key_and_run() {
        let calls = SharedCalls::default();
        let run = Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap();
        let count = AtomicU64::new(0);
        let call = || async {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(Response {
                status: 200,
                content_type: String::new(),
                bytes: b"x".to_vec(),
            })
        };
        let (a, b, c) = tokio::join!(
            calls.get(run, "k", call()),
            calls.get(run, "k", call()),
            calls.get(run, "other", call())
        );
        assert_eq!(count.load(Ordering::SeqCst), 2);
        assert!(a.0.is_ok() && b.0.is_ok() && c.0.is_ok());
        assert_eq!(u8::from(a.1) + u8::from(b.1), 1, "exactly one caller led");
        let next = run + ChronoDuration::hours(1);
        let (_, led) = calls.get(next, "k", call()).await;
        assert!(led, "a new run calls again");
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }
}
