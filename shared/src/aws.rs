//! AWS SDK set-up shared by the Lambda functions and the CLI.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

/// Loads region, credentials and endpoints the usual way (environment, profile, instance
/// role; `AWS_ENDPOINT_URL` for a local endpoint), with one rustls/ring HTTPS client: one
/// TLS stack to build, and it cross-compiles for arm64.
pub async fn sdk_config() -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .load()
        .await
}

/// An S3 client; path-style addressing when a local endpoint is configured (an emulator on
/// localhost has no per-bucket host names).
pub fn s3_client(conf: &SdkConfig) -> aws_sdk_s3::Client {
    let local = std::env::var_os("AWS_ENDPOINT_URL").is_some()
        || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(conf)
            .force_path_style(local)
            .build(),
    )
}
