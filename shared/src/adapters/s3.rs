//! Raw payload archive on S3.

use crate::ports::{RawArchive, RawPayload, StoreError};
use aws_sdk_s3::primitives::ByteStream;
use futures::future::BoxFuture;
use futures::FutureExt;

pub struct S3Archive {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Archive {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> S3Archive {
        S3Archive {
            client,
            bucket: bucket.into(),
        }
    }
}

impl RawArchive for S3Archive {
    fn put<'a>(
        &'a self,
        key: &'a str,
        payload: &'a RawPayload,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        async move {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .content_type(&payload.content_type)
                .body(ByteStream::from(payload.bytes.clone()))
                .send()
                .await
                .map_err(|e| {
                    StoreError::Backend(format!(
                        "s3 put {key}: {}",
                        aws_sdk_s3::error::DisplayErrorContext(&e)
                    ))
                })?;
            Ok(())
        }
        .boxed()
    }
}
