//! The scripted double: answers from a queue, then a fallback, and records every call.

use super::{CalloutRequest, Upstream, UpstreamReply, UpstreamResponse};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

/// Test upstream: answers from a script (first queued replies, then a fallback function) and records
/// every request it saw.
pub struct ScriptedUpstream {
    script: Mutex<VecDeque<UpstreamReply>>,
    fallback: Box<dyn Fn(&CalloutRequest) -> UpstreamReply + Send + Sync>,
    seen: Mutex<Vec<CalloutRequest>>,
}

impl ScriptedUpstream {
    /// Answers every call with `200` and an empty body unless replies are queued.
    pub fn new() -> Arc<ScriptedUpstream> {
        ScriptedUpstream::with_fallback(|_| {
            UpstreamReply::response(UpstreamResponse::new(200, &[], b""))
        })
    }

    /// Answers with `fallback` once queued replies run out.
    pub fn with_fallback(
        fallback: impl Fn(&CalloutRequest) -> UpstreamReply + Send + Sync + 'static,
    ) -> Arc<ScriptedUpstream> {
        Arc::new(ScriptedUpstream {
            script: Mutex::new(VecDeque::new()),
            fallback: Box::new(fallback),
            seen: Mutex::new(Vec::new()),
        })
    }

    /// Queues the answer to the next call.
    pub fn push(&self, reply: UpstreamReply) {
        self.script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(reply);
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<CalloutRequest> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Upstream for ScriptedUpstream {
    fn call(&self, request: &CalloutRequest) -> UpstreamReply {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request.clone());
        let queued = self
            .script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front();
        queued.unwrap_or_else(|| (self.fallback)(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maps::HeaderMap;
    use crate::upstream::UpstreamOutcome;
    use std::time::Duration;

    #[test]
    fn scripted_upstream_plays_queue_then_fallback_and_records() {
        let up = ScriptedUpstream::new();
        up.push(UpstreamReply::reset());
        let req = CalloutRequest {
            upstream: "x".into(),
            headers: HeaderMap::new(),
            body: vec![],
            trailers: HeaderMap::new(),
            timeout: Duration::from_secs(1),
        };
        assert!(matches!(
            up.call(&req),
            UpstreamReply::Ready {
                outcome: UpstreamOutcome::Reset,
                ..
            }
        ));
        assert!(matches!(
            up.call(&req),
            UpstreamReply::Ready {
                outcome: UpstreamOutcome::Response(_),
                ..
            }
        ));
        assert_eq!(up.requests().len(), 2);
    }
}
