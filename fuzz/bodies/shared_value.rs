//! Shared-data values (verdicts and introspection answers another worker VM wrote) are
//! untrusted bytes: decoding must never panic, whatever decodes must encode back to the same
//! bytes, and an answer never carries a body over the shared bound.

use revguard::coordination::verdicts::{SharedAnswer, SharedVerdict, MAX_ANSWER_BODY};

pub fn run(data: &[u8]) {
    if let Some(verdict) = SharedVerdict::decode(data) {
        assert_eq!(verdict.encode(), data);
    }
    if let Some(answer) = SharedAnswer::decode(data) {
        assert!(answer.body.len() <= MAX_ANSWER_BODY);
        assert_eq!(answer.encode(), data);
    }
}
