//! Metrics defined by guests, shared by every VM of a proxy, named with the host's prefix.

use crate::types::{MetricType, Status};
use std::collections::{BTreeMap, HashMap};

/// A metric's current value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricValue {
    Counter(u64),
    Gauge(u64),
    /// Every recorded sample, in order.
    Histogram(Vec<u64>),
}

/// Metric store. Ids encode the type in the low two bits, as Envoy's do; each definition gets a new id,
/// and definitions with the same name share one value.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    values: BTreeMap<String, MetricValue>,
    ids: HashMap<u32, String>,
    next: u32,
}

impl Metrics {
    pub(crate) fn define(&mut self, kind: MetricType, full_name: String) -> Result<u32, Status> {
        let existing = self.values.get(&full_name);
        let fits = matches!(
            (existing, kind),
            (None, _)
                | (Some(MetricValue::Counter(_)), MetricType::Counter)
                | (Some(MetricValue::Gauge(_)), MetricType::Gauge)
                | (Some(MetricValue::Histogram(_)), MetricType::Histogram)
        );
        if !fits {
            return Err(Status::BadArgument);
        }
        self.next = self.next.checked_add(1).ok_or(Status::InternalFailure)?;
        let id = self.next.checked_mul(4).ok_or(Status::InternalFailure)? | kind.code();
        self.values.entry(full_name.clone()).or_insert(match kind {
            MetricType::Counter => MetricValue::Counter(0),
            MetricType::Gauge => MetricValue::Gauge(0),
            MetricType::Histogram => MetricValue::Histogram(Vec::new()),
        });
        self.ids.insert(id, full_name);
        Ok(id)
    }

    fn by_id(&mut self, id: u32) -> Result<&mut MetricValue, Status> {
        let name = self.ids.get(&id).ok_or(Status::NotFound)?;
        self.values.get_mut(name).ok_or(Status::NotFound)
    }

    /// Counters only go up (a non-positive offset is `BadArgument`); histograms cannot be incremented.
    pub(crate) fn increment(&mut self, id: u32, offset: i64) -> Result<(), Status> {
        match self.by_id(id)? {
            MetricValue::Counter(v) => {
                if offset <= 0 {
                    return Err(Status::BadArgument);
                }
                *v = v.saturating_add(offset.unsigned_abs());
            }
            MetricValue::Gauge(v) => {
                *v = if offset >= 0 {
                    v.saturating_add(offset.unsigned_abs())
                } else {
                    v.saturating_sub(offset.unsigned_abs())
                };
            }
            MetricValue::Histogram(_) => return Err(Status::BadArgument),
        }
        Ok(())
    }

    /// Counter: adds; gauge: sets; histogram: records a sample.
    pub(crate) fn record(&mut self, id: u32, value: u64) -> Result<(), Status> {
        match self.by_id(id)? {
            MetricValue::Counter(v) => *v = v.saturating_add(value),
            MetricValue::Gauge(v) => *v = value,
            MetricValue::Histogram(samples) => samples.push(value),
        }
        Ok(())
    }

    /// Counter or gauge value; histograms cannot be read (`BadArgument`).
    pub(crate) fn get(&mut self, id: u32) -> Result<u64, Status> {
        match self.by_id(id)? {
            MetricValue::Counter(v) | MetricValue::Gauge(v) => Ok(*v),
            MetricValue::Histogram(_) => Err(Status::BadArgument),
        }
    }

    pub(crate) fn contains(&self, full_name: &str) -> bool {
        self.values.contains_key(full_name)
    }

    /// Number of distinct metrics.
    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    pub(crate) fn value(&self, full_name: &str) -> Option<MetricValue> {
        self.values.get(full_name).cloned()
    }

    pub(crate) fn all(&self) -> Vec<(String, MetricValue)> {
        self.values
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_gauges_histograms_behave_like_envoy() {
        let mut m = Metrics::default();
        let c = m
            .define(MetricType::Counter, "wasmcustom.c".into())
            .unwrap();
        let c2 = m
            .define(MetricType::Counter, "wasmcustom.c".into())
            .unwrap();
        assert_ne!(c, c2);
        assert_eq!(c & 3, 0);
        m.increment(c, 2).unwrap();
        m.increment(c2, 3).unwrap();
        assert_eq!(m.get(c), Ok(5));
        assert_eq!(m.increment(c, -1), Err(Status::BadArgument));
        assert_eq!(m.increment(c, 0), Err(Status::BadArgument));
        let g = m.define(MetricType::Gauge, "wasmcustom.g".into()).unwrap();
        m.record(g, 10).unwrap();
        m.increment(g, -3).unwrap();
        assert_eq!(m.get(g), Ok(7));
        let h = m
            .define(MetricType::Histogram, "wasmcustom.h".into())
            .unwrap();
        m.record(h, 4).unwrap();
        assert_eq!(m.get(h), Err(Status::BadArgument));
        assert_eq!(m.increment(h, 1), Err(Status::BadArgument));
        assert_eq!(
            m.value("wasmcustom.h"),
            Some(MetricValue::Histogram(vec![4]))
        );
        assert_eq!(m.get(999), Err(Status::NotFound));
        assert_eq!(
            m.define(MetricType::Gauge, "wasmcustom.c".into()),
            Err(Status::BadArgument)
        );
    }
}
