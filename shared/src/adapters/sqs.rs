//! Sending job lines to the jobs queue.

use crate::ports::StoreError;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

/// At most ten messages per SendMessageBatch call (an SQS limit).
const SQS_BATCH: usize = 10;

pub struct JobQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

/// What sending did, per line.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Sent {
    pub sent: usize,
    /// (index in the input, why SQS refused it).
    pub failed: Vec<(usize, String)>,
}

impl JobQueue {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> JobQueue {
        JobQueue {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// Sends each body as one message. A whole-call failure is an error; a per-message
    /// refusal is reported in `failed`.
    pub async fn send(&self, bodies: &[String]) -> Result<Sent, StoreError> {
        let mut out = Sent::default();
        for (chunk_no, chunk) in bodies.chunks(SQS_BATCH).enumerate() {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                        .map_err(|e| StoreError::Backend(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let res = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| {
                    StoreError::Backend(format!(
                        "sqs send: {}",
                        aws_sdk_sqs::error::DisplayErrorContext(&e)
                    ))
                })?;
            out.sent += res.successful().len();
            for f in res.failed() {
                let i: usize = f.id().parse().unwrap_or(0);
                out.failed.push((
                    chunk_no * SQS_BATCH + i,
                    format!("{}: {}", f.code(), f.message().unwrap_or("")),
                ));
            }
        }
        Ok(out)
    }
}
