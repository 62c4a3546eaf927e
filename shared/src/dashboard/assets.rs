//! The page and its libraries, embedded in the binary.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("../../assets/index.html");

/// (name, content type, bytes) of the page's own files.
const OWN: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/app.css"),
    ),
];

/// Vendored libraries (see assets/package.json for versions, vendor/licenses for terms).
const VENDOR: &[(&str, &str, &[u8])] = &[
    (
        "chart.umd.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/vendor/chart.umd.min.js"),
    ),
    (
        "d3-array.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/vendor/d3-array.min.js"),
    ),
    (
        "d3-geo.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/vendor/d3-geo.min.js"),
    ),
    (
        "topojson-client.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/vendor/topojson-client.min.js"),
    ),
    (
        "countries-110m.json",
        "application/json",
        include_bytes!("../../assets/vendor/countries-110m.json"),
    ),
];

pub async fn index() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX).into_response()
}

fn lookup(table: &[(&str, &str, &'static [u8])], file: &str) -> Response {
    match table.iter().find(|(name, _, _)| *name == file) {
        Some((_, ctype, bytes)) => (
            [
                (header::CONTENT_TYPE, *ctype),
                (header::CACHE_CONTROL, "max-age=3600"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, format!("no asset `{file}`")).into_response(),
    }
}

pub async fn asset(Path(file): Path<String>) -> Response {
    lookup(OWN, &file)
}

pub async fn vendor(Path(file): Path<String>) -> Response {
    lookup(VENDOR, &file)
}
