//! HTTP calls: `proxy_http_call` checks its arguments as the profile's host does and hands the call to
//! the configured [`Upstream`](crate::upstream::Upstream); answers are delivered by the VM loop.

use super::common::{trap, BAD_ARGUMENT, C, INVALID_MEMORY, OK, R};
use crate::config::Profile;
use crate::maps::HeaderMap;
use crate::memory::{read, write_u32};
use crate::state::{CalloutSource, PendingCallout, Phase};
use crate::upstream::{CalloutRequest, UpstreamReply};
use std::time::Duration;

// The ABI's signature.
#[allow(clippy::too_many_arguments)]
pub(crate) fn proxy_http_call(
    caller: C<'_>,
    uptr: u32,
    ulen: u32,
    hptr: u32,
    hlen: u32,
    bptr: u32,
    blen: u32,
    tptr: u32,
    tlen: u32,
    timeout_ms: u32,
    token_ptr: u32,
) -> R {
    let kong = matches!(caller.data().shared.config.profile, Profile::Kong(_));
    let phase = caller.data().phase;
    if kong
        && !matches!(
            phase,
            Phase::RequestHeaders | Phase::RequestBody | Phase::CallResponse | Phase::Tick
        )
    {
        return Err(trap(
            "can only send HTTP dispatch during \"on_request_headers\", \"on_request_body\", \
             \"on_dispatch_response\", \"on_tick\"",
        ));
    }
    let (Some(upstream), Some(headers), Some(body), Some(trailers)) = (
        read(caller, uptr, ulen),
        read(caller, hptr, hlen),
        read(caller, bptr, blen),
        read(caller, tptr, tlen),
    ) else {
        return Ok(INVALID_MEMORY);
    };
    let (Ok(upstream), Some(headers), Some(trailers)) = (
        String::from_utf8(upstream),
        HeaderMap::deserialize(&headers),
        HeaderMap::deserialize(&trailers),
    ) else {
        return Ok(BAD_ARGUMENT);
    };
    // Envoy takes the timeout as a signed int: "negative" values are refused; 0 means none.
    if i32::try_from(timeout_ms).is_err() {
        return Ok(BAD_ARGUMENT);
    }
    let required: &[&str] = if kong {
        &[":method", ":path"]
    } else {
        &[":method", ":path", ":authority"]
    };
    if required
        .iter()
        .any(|h| headers.get(h).is_none_or(<[u8]>::is_empty))
    {
        return Ok(BAD_ARGUMENT);
    }
    let target = caller
        .data()
        .shared
        .config
        .upstreams
        .get(&upstream)
        .cloned();
    if target.is_none() && !kong {
        return Ok(BAD_ARGUMENT);
    }
    let token = caller.data_mut().fresh_token();
    if !write_u32(caller, token_ptr, token) {
        return Ok(INVALID_MEMORY);
    }
    let timeout = Duration::from_millis(u64::from(timeout_ms));
    let request = CalloutRequest {
        upstream,
        headers,
        body,
        trailers,
        timeout,
    };
    // Kong resolves host:port later; a name nothing answers to fails like a refused connection.
    let answer = match target {
        Some(t) => t.call(&request),
        None => UpstreamReply::reset(),
    };
    let state = caller.data_mut();
    let now = state.now();
    let deadline = if timeout_ms == 0 {
        u64::MAX
    } else {
        now.saturating_add(crate::clock::nanos(timeout))
    };
    let (due, source) = match answer {
        UpstreamReply::Ready { delay, outcome } => (
            now.saturating_add(crate::clock::nanos(delay)),
            CalloutSource::Ready(outcome),
        ),
        UpstreamReply::Hang => (u64::MAX, CalloutSource::Hang),
        UpstreamReply::Pending(rx) => (u64::MAX, CalloutSource::Pending(rx)),
    };
    let context_id = state.current_context;
    state.callouts.push(PendingCallout {
        token,
        context_id,
        due,
        deadline,
        source,
    });
    Ok(OK)
}
