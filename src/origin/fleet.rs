//! The fleet view: which enforcement point holds which generation, since when.
//!
//! Plugins send `x-revguard-node` (their id) and `x-revguard-generation` (the generation they
//! hold; absent or 0 for none) on every fetch. A node is *live* while it was seen within the
//! live window. A generation has *reached the fleet* once every live node reports holding it
//! or a newer one (deltas are cumulative, so a newer generation includes it); the time from
//! its publication until then is recorded. Bounded: at most `max_nodes` nodes (a stale node
//! makes room for a new one; otherwise the new one is not recorded), ids of at most
//! [`MAX_NODE_ID_BYTES`].

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;

/// Longest node id recorded, in bytes.
pub const MAX_NODE_ID_BYTES: usize = 128;
/// How many recent generations the view tracks.
pub const RECENT_GENERATIONS: usize = 64;

#[derive(Clone, Debug)]
struct Node {
    generation: u64,
    last_seen_ms: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct GenerationView {
    pub generation: u64,
    pub kind: &'static str,
    pub published_at_ms: i64,
    /// Milliseconds from publication until every live node held it (null: not yet).
    pub reached_all_live_nodes_after_ms: Option<i64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct NodeView {
    pub node: String,
    pub generation: u64,
    pub last_seen_ms: i64,
    pub live: bool,
    pub behind: bool,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Counts {
    pub seen: u64,
    pub live: u64,
    pub behind: u64,
    /// Nodes not recorded because the table was full of live nodes.
    pub refused: u64,
}

#[derive(Default)]
struct State {
    nodes: HashMap<String, Node>,
    recent: VecDeque<GenerationView>,
    refused: u64,
}

pub struct Fleet {
    state: Mutex<State>,
    live_window_ms: i64,
    max_nodes: usize,
}

/// A node id header value: 1 to [`MAX_NODE_ID_BYTES`] visible ASCII characters.
pub fn valid_node_id(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_NODE_ID_BYTES && id.iter().all(|b| b.is_ascii_graphic())
}

/// A generation header value: decimal, at most 20 digits.
pub fn parse_generation(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 20 {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

impl Fleet {
    pub fn new(live_window_secs: u64, max_nodes: usize) -> Fleet {
        Fleet {
            state: Mutex::new(State::default()),
            live_window_ms: i64::try_from(live_window_secs.saturating_mul(1000))
                .unwrap_or(i64::MAX),
            max_nodes,
        }
    }

    fn is_live(&self, node: &Node, now_ms: i64) -> bool {
        now_ms.saturating_sub(node.last_seen_ms) <= self.live_window_ms
    }

    /// Records a publication.
    pub fn published(&self, generation: u64, kind: &'static str, at_ms: i64) {
        let Ok(mut s) = self.state.lock() else { return };
        s.recent.push_back(GenerationView {
            generation,
            kind,
            published_at_ms: at_ms,
            reached_all_live_nodes_after_ms: None,
        });
        while s.recent.len() > RECENT_GENERATIONS {
            s.recent.pop_front();
        }
    }

    /// Records a fetch by `node` holding `generation`. Returns the times (seconds) after
    /// which generations just reached every live node.
    pub fn seen(&self, node: &str, generation: u64, now_ms: i64) -> Vec<f64> {
        let Ok(mut s) = self.state.lock() else {
            return Vec::new();
        };
        if let Some(n) = s.nodes.get_mut(node) {
            n.generation = generation;
            n.last_seen_ms = now_ms;
        } else {
            if s.nodes.len() >= self.max_nodes {
                let oldest = s
                    .nodes
                    .iter()
                    .min_by_key(|(_, n)| n.last_seen_ms)
                    .filter(|(_, n)| !self.is_live(n, now_ms))
                    .map(|(k, _)| k.clone());
                match oldest {
                    Some(k) => {
                        s.nodes.remove(&k);
                    }
                    None => {
                        s.refused = s.refused.saturating_add(1);
                        return Vec::new();
                    }
                }
            }
            s.nodes.insert(
                node.to_string(),
                Node {
                    generation,
                    last_seen_ms: now_ms,
                },
            );
        }
        self.converge(&mut s, now_ms)
    }

    fn converge(&self, s: &mut State, now_ms: i64) -> Vec<f64> {
        let min_live = s
            .nodes
            .values()
            .filter(|n| self.is_live(n, now_ms))
            .map(|n| n.generation)
            .min();
        let Some(min_live) = min_live else {
            return Vec::new();
        };
        let mut reached = Vec::new();
        for g in s.recent.iter_mut() {
            if g.reached_all_live_nodes_after_ms.is_none() && g.generation <= min_live {
                let after = now_ms.saturating_sub(g.published_at_ms).max(0);
                g.reached_all_live_nodes_after_ms = Some(after);
                reached.push(after as f64 / 1000.0);
            }
        }
        reached
    }

    pub fn counts(&self, current: u64, now_ms: i64) -> Counts {
        let Ok(s) = self.state.lock() else {
            return Counts::default();
        };
        let mut c = Counts {
            seen: s.nodes.len() as u64,
            refused: s.refused,
            ..Counts::default()
        };
        for n in s.nodes.values().filter(|n| self.is_live(n, now_ms)) {
            c.live = c.live.saturating_add(1);
            if n.generation < current {
                c.behind = c.behind.saturating_add(1);
            }
        }
        c
    }

    /// The nodes (sorted by id) and recent generations (newest first).
    pub fn view(&self, current: u64, now_ms: i64) -> (Vec<NodeView>, Vec<GenerationView>) {
        let Ok(s) = self.state.lock() else {
            return (Vec::new(), Vec::new());
        };
        let mut nodes: Vec<NodeView> = s
            .nodes
            .iter()
            .map(|(id, n)| {
                let live = self.is_live(n, now_ms);
                NodeView {
                    node: id.clone(),
                    generation: n.generation,
                    last_seen_ms: n.last_seen_ms,
                    live,
                    behind: live && n.generation < current,
                }
            })
            .collect();
        nodes.sort_by(|a, b| a.node.cmp(&b.node));
        let recent = s.recent.iter().rev().cloned().collect();
        (nodes, recent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generation_reaches_the_fleet_when_every_live_node_holds_it() {
        let f = Fleet::new(10, 3);
        f.seen("a", 1, 0);
        f.seen("b", 1, 0);
        f.published(2, "delta", 1_000);
        assert!(f.seen("a", 2, 1_500).is_empty());
        assert_eq!(f.counts(2, 1_500).behind, 1);
        assert_eq!(f.seen("b", 2, 2_000), vec![1.0]);
        // "c" never catches up but stops being live: generation 3 reaches the others.
        f.seen("c", 2, 2_000);
        f.published(3, "delta", 3_000);
        f.seen("a", 3, 3_100);
        assert!(f.seen("b", 3, 3_200).is_empty());
        assert_eq!(f.seen("a", 3, 20_000), vec![17.0]);
        let (nodes, recent) = f.view(3, 20_000);
        assert_eq!(nodes.len(), 3);
        assert_eq!(recent[0].reached_all_live_nodes_after_ms, Some(17_000));
    }

    #[test]
    fn bounded() {
        let f = Fleet::new(10, 2);
        f.seen("a", 1, 0);
        f.seen("b", 1, 0);
        f.seen("c", 1, 1_000);
        assert_eq!(f.counts(1, 1_000).refused, 1);
        f.seen("c", 1, 50_000);
        assert_eq!(f.counts(1, 50_000).seen, 2);
        assert!(valid_node_id(b"gw-1.eu"));
        assert!(!valid_node_id(b"has space"));
        assert!(!valid_node_id(&[b'x'; 129]));
        assert_eq!(parse_generation(b"42"), Some(42));
        assert_eq!(parse_generation(b"-1"), None);
    }
}
