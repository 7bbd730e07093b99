//! A response body that streams frames through unchanged, counts the data bytes, and
//! writes the request's audit record when the body ends or is dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::audit::AuditRecord;
use crate::server::Proxy;

/// An upstream response body on its way to the agent.
pub(crate) struct AuditedBody {
    inner: Incoming,
    bytes: u64,
    pending: Option<(Arc<Proxy>, AuditRecord)>,
}

impl AuditedBody {
    pub(crate) fn new(inner: Incoming, proxy: Arc<Proxy>, record: AuditRecord) -> AuditedBody {
        AuditedBody {
            inner,
            bytes: 0,
            pending: Some((proxy, record)),
        }
    }

    fn finish(&mut self) {
        if let Some((proxy, mut record)) = self.pending.take() {
            record.bytes = self.bytes;
            proxy.write_audit(&record);
        }
    }
}

impl Body for AuditedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += u64::try_from(data.len()).unwrap_or(u64::MAX);
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => this.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for AuditedBody {
    fn drop(&mut self) {
        self.finish();
    }
}
