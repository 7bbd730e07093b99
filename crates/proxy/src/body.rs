//! A response body on its way to the agent: it streams frames through (scanning text for
//! prompt injection when the route asks for it), counts the data bytes, and writes the
//! request's audit record when the body ends or is dropped.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::audit::AuditRecord;
use crate::inbound::{Output, StreamInspector};
use crate::server::Proxy;

/// An upstream response body on its way to the agent.
pub(crate) struct AuditedBody {
    inner: Incoming,
    inspector: Option<StreamInspector>,
    /// Scanned bytes waiting to be sent.
    queue: VecDeque<Bytes>,
    /// Set once the upstream body ended or the stream was cut.
    done: bool,
    bytes: u64,
    pending: Option<(Arc<Proxy>, AuditRecord)>,
}

impl AuditedBody {
    pub(crate) fn new(
        inner: Incoming,
        inspector: Option<StreamInspector>,
        proxy: Arc<Proxy>,
        record: AuditRecord,
    ) -> AuditedBody {
        AuditedBody {
            inner,
            inspector,
            queue: VecDeque::new(),
            done: false,
            bytes: 0,
            pending: Some((proxy, record)),
        }
    }

    fn finish(&mut self) {
        if let Some((proxy, mut record)) = self.pending.take() {
            record.bytes = self.bytes;
            if let Some(inspector) = &mut self.inspector {
                record.inbound = std::mem::take(&mut inspector.findings);
                if self.done
                    && record
                        .inbound
                        .iter()
                        .any(|f| f.severity == crate::Severity::High)
                {
                    record.reason = Some("response cut: likely prompt injection".to_owned());
                }
            }
            proxy.write_audit(&record);
        }
    }

    fn take(&mut self, output: Output) {
        self.queue
            .extend(output.forward.into_iter().filter(|b| !b.is_empty()));
        if output.cut {
            self.done = true;
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
        loop {
            if let Some(data) = this.queue.pop_front() {
                this.bytes += u64::try_from(data.len()).unwrap_or(u64::MAX);
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            if this.done {
                this.finish();
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    this.done = true;
                    if let Some(inspector) = &mut this.inspector {
                        let output = inspector.finish();
                        this.take(output);
                    }
                }
                Poll::Ready(Some(Err(err))) => {
                    this.finish();
                    return Poll::Ready(Some(Err(err)));
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => match &mut this.inspector {
                        Some(inspector) => {
                            let output = inspector.push(&data);
                            this.take(output);
                        }
                        None => this.queue.push_back(data),
                    },
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.queue.is_empty()
            && (self.done || (self.inspector.is_none() && self.inner.is_end_stream()))
    }

    fn size_hint(&self) -> SizeHint {
        if self.inspector.is_some() {
            // A cut or a marker changes the length.
            SizeHint::default()
        } else {
            self.inner.size_hint()
        }
    }
}

impl Drop for AuditedBody {
    fn drop(&mut self) {
        self.finish();
    }
}
