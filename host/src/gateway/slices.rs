//! Groups a request's accepted events by source, in their original order,
//! into slices bounded by count and bytes: one JetStream message each.
use crate::wire::SliceBuilder;
use bytes::Bytes;
use std::ops::Range;

/// An accepted event: its source and where its bytes are in the body.
pub struct Accepted {
    pub source: String,
    pub range: Range<usize>,
}

/// One message to publish.
#[derive(Debug)]
pub struct Slice {
    pub source: String,
    pub payload: Bytes,
    pub count: usize,
}

/// Builds the slices. `max_bytes` bounds a payload; an event must fit in it
/// alone (the caller dead-letters larger ones). Events keep their order
/// within each source.
pub fn build(
    body: &[u8],
    events: Vec<Accepted>,
    max_events: usize,
    max_bytes: usize,
) -> Vec<Slice> {
    let max_events = max_events.max(1);
    // A request names few sources: a short list beats a map.
    let mut open: Vec<(String, SliceBuilder)> = Vec::new();
    let mut done = Vec::new();
    for Accepted { source, range } in events {
        let bytes = &body[range];
        let slot = match open.iter().position(|(s, _)| *s == source) {
            Some(i) => i,
            None => {
                open.push((source, SliceBuilder::default()));
                open.len() - 1
            }
        };
        let builder = &mut open[slot].1;
        if !builder.is_empty()
            && (builder.count() >= max_events || builder.len_with(bytes) > max_bytes)
        {
            let full = std::mem::take(builder);
            done.push(finish(open[slot].0.clone(), full));
        }
        open[slot].1.push(bytes);
    }
    done.extend(
        open.into_iter()
            .filter(|(_, b)| !b.is_empty())
            .map(|(source, b)| finish(source, b)),
    );
    done
}

fn finish(source: String, builder: SliceBuilder) -> Slice {
    let (payload, count) = builder.finish();
    Slice {
        source,
        payload,
        count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire;

    /// A body of `n` events `{"i":<k>}` alternating between two sources.
    fn request(n: usize) -> (String, Vec<Accepted>) {
        let mut body = String::new();
        let mut events = Vec::new();
        for k in 0..n {
            let e = format!("{{\"i\":{k}}}");
            let start = body.len();
            body.push_str(&e);
            events.push(Accepted {
                source: if k % 2 == 0 { "a" } else { "b" }.into(),
                range: start..body.len(),
            });
        }
        (body, events)
    }

    fn events_of(s: &Slice) -> Vec<String> {
        let count = s.count.to_string();
        wire::split(&s.payload, Some(&count))
            .unwrap()
            .into_iter()
            .map(|r| String::from_utf8(s.payload[r].to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn groups_by_source_in_order_bounded_by_count() {
        let (body, events) = request(10);
        let slices = build(body.as_bytes(), events, 2, 1 << 20);
        let a: Vec<String> = slices
            .iter()
            .filter(|s| s.source == "a")
            .flat_map(events_of)
            .collect();
        assert_eq!(
            a,
            [
                "{\"i\":0}",
                "{\"i\":2}",
                "{\"i\":4}",
                "{\"i\":6}",
                "{\"i\":8}"
            ]
        );
        assert!(slices.iter().all(|s| s.count <= 2));
        assert_eq!(slices.iter().map(|s| s.count).sum::<usize>(), 10);
        assert_eq!(slices.len(), 6);
    }

    #[test]
    fn bounded_by_bytes_and_an_event_alone_always_fits() {
        let (body, events) = request(8);
        // Each event is 7 bytes + 4 of framing: two fit in 22, not in 21.
        let slices = build(body.as_bytes(), events, 1000, 22);
        assert!(slices.iter().all(|s| s.count == 2 && s.payload.len() == 22));
        assert_eq!(slices.len(), 4);
        let (body, events) = request(8);
        let slices = build(body.as_bytes(), events, 1000, 21);
        assert!(slices.iter().all(|s| s.count == 1));
        assert_eq!(slices.len(), 8);
        // An event larger than the bound still travels, alone.
        let (body, events) = request(2);
        assert_eq!(build(body.as_bytes(), events, 1000, 3).len(), 2);
    }

    #[test]
    fn nothing_accepted_means_no_slice() {
        assert!(build(b"", Vec::new(), 10, 100).is_empty());
    }
}
